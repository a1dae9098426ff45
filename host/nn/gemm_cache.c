/* The GEMM dispatcher's per-device files: back-end choices per shape and tuned CLBlast
 * parameters (JSON in the kdcl cache dir). */
#include "nn/gemm_cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "nn/gemm.h"
#include "runtime/file_io.h"
#include "runtime/program.h"

#define CHOICE_FORMAT "kdcl-gemm-choice"
#define PARAMS_FORMAT "kdcl-clblast-params"

uint64_t kd_gemm_device_key(const kd_device_info *info) {
  uint64_t h = kd_fnv1a64(0, info->platform_name, strlen(info->platform_name) + 1);
  h = kd_fnv1a64(h, info->name, strlen(info->name) + 1);
  h = kd_fnv1a64(h, info->version, strlen(info->version) + 1);
  return kd_fnv1a64(h, info->driver_version, strlen(info->driver_version) + 1);
}

int kd_gemm_cache_path(char *buf, size_t len, const char *prefix, uint64_t key) {
  char dir[4096];
  kd_cache_dir(dir, sizeof dir);
  if (!dir[0]) return -1;
  int n = snprintf(buf, len, "%s/%s-%016llx.json", dir, prefix, (unsigned long long)key);
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Reads the whole file as a NUL-terminated string: 0, 1 when absent, -1 on a read error. */
static int slurp(const char *path, char **out, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return errno == ENOENT ? 1 : -1;
  char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n + 4096 + 1 > cap) {
      cap = cap ? cap * 2 : 8192;
      char *grown = cap <= (size_t)64 << 20 ? realloc(buf, cap) : NULL;
      if (!grown) {
        free(buf);
        fclose(f);
        return -1;
      }
      buf = grown;
    }
    size_t got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (got == 0) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return -1;
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return 0;
}

/* Parses path as a JSON object of the given format; NULL with a warning otherwise. */
static cJSON *load_json(const char *path, const char *format, int *absent, char *warn,
                        size_t warn_len) {
  char *text = NULL;
  size_t len = 0;
  *absent = 0;
  int rc = slurp(path, &text, &len);
  if (rc == 1) {
    *absent = 1;
    return NULL;
  }
  if (rc) {
    snprintf(warn, warn_len, "%s: cannot read it (%s); ignored", path, strerror(errno));
    return NULL;
  }
  cJSON *root = strlen(text) == len ? cJSON_Parse(text) : NULL;
  free(text);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    snprintf(warn, warn_len, "%s: not a JSON object (a damaged cache file?); ignored", path);
    return NULL;
  }
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "format");
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "format_version");
  const cJSON *major = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, 0) : NULL;
  if (!cJSON_IsString(f) || strcmp(f->valuestring, format) || !cJSON_IsNumber(major) ||
      major->valuedouble != 1) {
    cJSON_Delete(root);
    snprintf(warn, warn_len, "%s: not a \"%s\" file of format version 1; ignored", path, format);
    return NULL;
  }
  return root;
}

static const char *json_string(const cJSON *obj, const char *name) {
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, name);
  return cJSON_IsString(s) ? s->valuestring : NULL;
}

/* A non-negative integer field that fits uint64 exactly (JSON numbers are doubles). */
static int json_u64(const cJSON *obj, const char *name, uint64_t *out) {
  const cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, name);
  if (!cJSON_IsNumber(n) || !(n->valuedouble >= 0) || n->valuedouble > 9007199254740992.0 ||
      n->valuedouble != (double)(uint64_t)n->valuedouble)
    return -1;
  *out = (uint64_t)n->valuedouble;
  return 0;
}

/* ---- choices ---- */

const kd_gemm_choice *kd_gemm_choices_find(const kd_gemm_choices *c, int trans_a, int trans_b,
                                           uint64_t m, uint64_t n, uint64_t k) {
  for (size_t i = 0; i < c->count; i++) {
    const kd_gemm_choice *e = &c->items[i];
    if (e->trans_a == !!trans_a && e->trans_b == !!trans_b && e->m == m && e->n == n && e->k == k)
      return e;
  }
  return NULL;
}

int kd_gemm_choices_add(kd_gemm_choices *c, const kd_gemm_choice *choice) {
  if (kd_gemm_choices_find(c, choice->trans_a, choice->trans_b, choice->m, choice->n, choice->k))
    return 0;
  if (c->count == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 16;
    kd_gemm_choice *grown = realloc(c->items, cap * sizeof *grown);
    if (!grown) return -1;
    c->items = grown;
    c->cap = cap;
  }
  c->items[c->count] = *choice;
  c->items[c->count].trans_a = !!choice->trans_a;
  c->items[c->count].trans_b = !!choice->trans_b;
  c->count++;
  return 0;
}

void kd_gemm_choices_free(kd_gemm_choices *c) {
  free(c->items);
  memset(c, 0, sizeof *c);
}

static const char *op_name(int ta, int tb) {
  static const char *const names[2][2] = {{"NN", "NT"}, {"TN", "TT"}};
  return names[!!ta][!!tb];
}

int kd_gemm_choices_load(const char *path, const char *device_name, kd_gemm_choices *out,
                         char *warn, size_t warn_len) {
  int absent;
  cJSON *root = load_json(path, CHOICE_FORMAT, &absent, warn, warn_len);
  if (!root) return absent ? 0 : -1;
  const char *dev = json_string(root, "device");
  const cJSON *shapes = cJSON_GetObjectItemCaseSensitive(root, "shapes");
  int rc = -1;
  kd_gemm_choices got = {0};
  if (device_name && (!dev || strcmp(dev, device_name))) {
    snprintf(warn, warn_len, "%s: written for device '%s', not '%s'; ignored", path,
             dev ? dev : "?", device_name);
    goto done;
  }
  if (!cJSON_IsArray(shapes)) {
    snprintf(warn, warn_len, "%s: no \"shapes\" array; ignored", path);
    goto done;
  }
  const cJSON *e;
  int i = 0;
  cJSON_ArrayForEach(e, shapes) {
    kd_gemm_choice ch = {0};
    const char *op = json_string(e, "op"), *backend = json_string(e, "backend");
    const cJSON *bms = cJSON_GetObjectItemCaseSensitive(e, "builtin_ms");
    const cJSON *cms = cJSON_GetObjectItemCaseSensitive(e, "clblast_ms");
    int ok = op && strlen(op) == 2 && (op[0] == 'N' || op[0] == 'T') &&
             (op[1] == 'N' || op[1] == 'T') && backend && json_u64(e, "m", &ch.m) == 0 &&
             json_u64(e, "n", &ch.n) == 0 && json_u64(e, "k", &ch.k) == 0 && ch.m && ch.n &&
             ch.k;
    if (ok && !strcmp(backend, "builtin"))
      ch.backend = KD_GEMM_BUILTIN;
    else if (ok && !strcmp(backend, "clblast"))
      ch.backend = KD_GEMM_CLBLAST;
    else
      ok = 0;
    if (!ok) {
      snprintf(warn, warn_len, "%s: shape entry %d is malformed; ignored", path, i);
      goto done;
    }
    ch.trans_a = op[0] == 'T';
    ch.trans_b = op[1] == 'T';
    ch.builtin_ms = cJSON_IsNumber(bms) ? bms->valuedouble : 0;
    ch.clblast_ms = cJSON_IsNumber(cms) ? cms->valuedouble : -1;
    if (kd_gemm_choices_add(&got, &ch)) {
      snprintf(warn, warn_len, "%s: out of host memory; ignored", path);
      goto done;
    }
    i++;
  }
  for (size_t j = 0; j < got.count; j++)
    if (kd_gemm_choices_add(out, &got.items[j])) {
      snprintf(warn, warn_len, "%s: out of host memory; ignored", path);
      goto done;
    }
  rc = 1;
done:
  kd_gemm_choices_free(&got);
  cJSON_Delete(root);
  return rc;
}

int kd_gemm_choices_save(const char *path, const kd_device_info *info, const kd_gemm_choices *c) {
  cJSON *root = cJSON_CreateObject();
  cJSON *shapes = NULL;
  int ok = root != NULL;
  if (ok) {
    cJSON_AddStringToObject(root, "format", CHOICE_FORMAT);
    cJSON *v = cJSON_AddArrayToObject(root, "format_version");
    if (v) {
      cJSON_AddItemToArray(v, cJSON_CreateNumber(1));
      cJSON_AddItemToArray(v, cJSON_CreateNumber(0));
    }
    cJSON_AddStringToObject(root, "platform", info->platform_name);
    cJSON_AddStringToObject(root, "device", info->name);
    cJSON_AddStringToObject(root, "device_version", info->version);
    cJSON_AddStringToObject(root, "driver_version", info->driver_version);
    shapes = cJSON_AddArrayToObject(root, "shapes");
    ok = v && shapes;
  }
  for (size_t i = 0; ok && i < c->count; i++) {
    const kd_gemm_choice *e = &c->items[i];
    cJSON *o = cJSON_CreateObject();
    if (!o) {
      ok = 0;
      break;
    }
    cJSON_AddItemToArray(shapes, o);
    cJSON_AddStringToObject(o, "op", op_name(e->trans_a, e->trans_b));
    cJSON_AddNumberToObject(o, "m", (double)e->m);
    cJSON_AddNumberToObject(o, "n", (double)e->n);
    cJSON_AddNumberToObject(o, "k", (double)e->k);
    cJSON_AddStringToObject(o, "backend", kd_gemm_backend_name(e->backend));
    cJSON_AddNumberToObject(o, "builtin_ms", e->builtin_ms);
    cJSON_AddNumberToObject(o, "clblast_ms", e->clblast_ms);
  }
  char *text = ok ? cJSON_Print(root) : NULL;
  cJSON_Delete(root);
  if (!text) {
    errno = ENOMEM;
    return -1;
  }
  size_t len = strlen(text);
  text[len] = '\n'; /* cJSON_Print leaves no final newline; its NUL becomes one */
  int rc = kd_write_file_atomic(path, text, len + 1);
  cJSON_free(text);
  return rc;
}

/* ---- tuned CLBlast parameters ---- */

int kd_clblast_params_load(const char *path, const kd_device_info *info, kd_clblast_params *out,
                           char *warn, size_t warn_len) {
  memset(out, 0, sizeof *out);
  int absent;
  cJSON *root = load_json(path, PARAMS_FORMAT, &absent, warn, warn_len);
  if (!root) return absent ? 0 : -1;
  int rc = -1;
  const char *fields[4][2] = {{"platform", info->platform_name},
                              {"device", info->name},
                              {"device_version", info->version},
                              {"driver_version", info->driver_version}};
  for (int i = 0; i < 4; i++) {
    const char *got = json_string(root, fields[i][0]);
    if (!got || strcmp(got, fields[i][1])) {
      snprintf(warn, warn_len, "%s: tuned for %s '%s', this device has '%s'; ignored", path,
               fields[i][0], got ? got : "?", fields[i][1]);
      goto done;
    }
  }
  const cJSON *kernels = cJSON_GetObjectItemCaseSensitive(root, "kernels");
  if (!cJSON_IsObject(kernels)) {
    snprintf(warn, warn_len, "%s: no \"kernels\" object; ignored", path);
    goto done;
  }
  const cJSON *k;
  cJSON_ArrayForEach(k, kernels) {
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(k, "parameters");
    if (out->count == KD_CLBLAST_MAX_KERNELS || !k->string ||
        strlen(k->string) >= sizeof out->kernels[0].kernel || !cJSON_IsObject(params)) {
      snprintf(warn, warn_len, "%s: kernel entry '%s' is malformed; ignored", path,
               k->string ? k->string : "?");
      goto done;
    }
    kd_clblast_kernel_params *kp = &out->kernels[out->count++];
    snprintf(kp->kernel, sizeof kp->kernel, "%s", k->string);
    const cJSON *p;
    cJSON_ArrayForEach(p, params) {
      uint64_t v;
      if (kp->count == KD_CLBLAST_MAX_PARAMS || !p->string ||
          strlen(p->string) >= sizeof kp->names[0] || json_u64(params, p->string, &v)) {
        snprintf(warn, warn_len, "%s: parameter '%s' of %s is malformed; ignored", path,
                 p->string ? p->string : "?", kp->kernel);
        goto done;
      }
      snprintf(kp->names[kp->count], sizeof kp->names[0], "%s", p->string);
      kp->values[kp->count++] = (size_t)v;
    }
  }
  if (out->count == 0) {
    snprintf(warn, warn_len, "%s: lists no kernels; ignored", path);
    goto done;
  }
  /* The fingerprint: every kernel name, parameter name and value, in file order. */
  uint64_t h = kd_fnv1a64(0, PARAMS_FORMAT, sizeof PARAMS_FORMAT);
  for (size_t i = 0; i < out->count; i++) {
    const kd_clblast_kernel_params *kp = &out->kernels[i];
    h = kd_fnv1a64(h, kp->kernel, strlen(kp->kernel) + 1);
    for (size_t j = 0; j < kp->count; j++) {
      uint64_t v = kp->values[j];
      h = kd_fnv1a64(h, kp->names[j], strlen(kp->names[j]) + 1);
      h = kd_fnv1a64(h, &v, sizeof v);
    }
  }
  out->fingerprint = h;
  rc = 1;
done:
  cJSON_Delete(root);
  if (rc != 1) memset(out, 0, sizeof *out);
  return rc;
}
