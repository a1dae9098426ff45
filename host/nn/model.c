/* Model spec parsing (cJSON) and checking, parameter layout and initialisation. */
#include "nn/model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "train/rng.h"

/* Largest tensor we accept from a spec: arenas are indexed with 32 bits. */
#define KD_MAX_ELEMS ((size_t)1 << 31)

static int only_fields(const cJSON *obj, const char *const *allowed, const char *source, int i,
                       const char *type, kd_error *err) {
  for (const cJSON *f = obj->child; f; f = f->next) {
    int ok = 0;
    for (int a = 0; allowed[a]; a++) ok |= !strcmp(f->string, allowed[a]);
    if (!ok)
      return kd_fail(err, "%s: layers[%d] (%s) has unknown field '%s'", source, i, type,
                     f->string);
  }
  return 0;
}

/* Reads a positive integer field; `required` says whether absence is an error. */
static int positive_int(const cJSON *obj, const char *field, int required, int64_t *out,
                        const char *source, int i, const char *type, kd_error *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
  if (!v) {
    if (required)
      return kd_fail(err, "%s: layers[%d] (%s) needs the field '%s'", source, i, type, field);
    return 0;
  }
  if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 ||
      v->valuedouble > (double)KD_MAX_ELEMS)
    return kd_fail(err, "%s: layers[%d] (%s) field '%s' must be a positive integer", source, i,
                   type, field);
  *out = (int64_t)v->valuedouble;
  return 0;
}

static int add_param(kd_model *m, const char *name, int ndim, int64_t d0, int64_t d1,
                     size_t *off_out, kd_error *err) {
  kd_param *grown = realloc(m->params, (size_t)(m->num_params + 1) * sizeof *grown);
  if (!grown) return kd_fail(err, "out of host memory");
  m->params = grown;
  kd_param *p = &m->params[m->num_params++];
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  p->ndim = ndim;
  p->shape[0] = d0;
  p->shape[1] = d1;
  p->numel = (size_t)d0 * (size_t)(ndim > 1 ? d1 : 1);
  /* 16-float alignment, as the arena does, so offsets are valid arena offsets. */
  p->off = m->param_floats;
  m->param_floats += (p->numel + 15) / 16 * 16;
  *off_out = p->off;
  return 0;
}

static int parse_layer(kd_model *m, const cJSON *spec, int i, int *ndim, int64_t *shape,
                       const char *source, kd_error *err) {
  kd_layer *L = &m->layers[i];
  memset(L, 0, sizeof *L);
  if (!cJSON_IsObject(spec))
    return kd_fail(err, "%s: layers[%d] must be an object like {\"type\": \"dense\", ...}",
                   source, i);
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(spec, "type");
  if (!cJSON_IsString(t))
    return kd_fail(err, "%s: layers[%d] needs a string field 'type'", source, i);
  const char *type = t->valuestring;
  size_t in_size = 1;
  for (int d = 0; d < *ndim; d++) in_size *= (size_t)shape[d];
  L->in_size = in_size;

  if (!strcmp(type, "flatten")) {
    static const char *const allowed[] = {"type", NULL};
    if (only_fields(spec, allowed, source, i, type, err)) return -1;
    L->type = KD_LAYER_FLATTEN;
    shape[0] = (int64_t)in_size;
    *ndim = 1;
  } else if (!strcmp(type, "dense")) {
    static const char *const allowed[] = {"type", "units", "bias", NULL};
    if (only_fields(spec, allowed, source, i, type, err)) return -1;
    int64_t units = 0;
    if (positive_int(spec, "units", 1, &units, source, i, type, err)) return -1;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(spec, "bias");
    if (b && !cJSON_IsBool(b))
      return kd_fail(err, "%s: layers[%d] (dense) field 'bias' must be true or false", source, i);
    L->bias = b ? cJSON_IsTrue(b) : 1;
    if (*ndim != 1)
      return kd_fail(err,
                     "%s: layers[%d] (dense) needs a flat input but gets rank %d; add "
                     "{\"type\": \"flatten\"} before it",
                     source, i, *ndim);
    if ((size_t)units > KD_MAX_ELEMS / in_size)
      return kd_fail(err, "%s: layers[%d] (dense) weight [%lld, %zu] is too large", source, i,
                     (long long)units, in_size);
    L->type = KD_LAYER_DENSE;
    char name[64];
    snprintf(name, sizeof name, "layers.%d.weight", i);
    if (add_param(m, name, 2, units, (int64_t)in_size, &L->w_off, err)) return -1;
    if (L->bias) {
      snprintf(name, sizeof name, "layers.%d.bias", i);
      if (add_param(m, name, 1, units, 0, &L->b_off, err)) return -1;
    }
    shape[0] = units;
  } else if (!strcmp(type, "dropout")) {
    static const char *const allowed[] = {"type", "rate", NULL};
    if (only_fields(spec, allowed, source, i, type, err)) return -1;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(spec, "rate");
    if (!r) return kd_fail(err, "%s: layers[%d] (dropout) needs the field 'rate'", source, i);
    if (!cJSON_IsNumber(r) || !(r->valuedouble >= 0.0 && r->valuedouble < 1.0))
      return kd_fail(err, "%s: layers[%d] (dropout) field 'rate' must be in [0, 1)", source, i);
    L->type = KD_LAYER_DROPOUT;
    L->rate = (float)r->valuedouble;
  } else if (kd_activation_parse(type, &L->act) == 0) {
    static const char *const allowed[] = {"type", NULL};
    if (only_fields(spec, allowed, source, i, type, err)) return -1;
    L->type = KD_LAYER_ACTIVATION;
  } else {
    return kd_fail(err,
                   "%s: layers[%d] has unknown layer type '%s' (this build knows flatten, dense, "
                   "dropout, relu, gelu, tanh, sigmoid)",
                   source, i, type);
  }
  L->out_ndim = *ndim;
  size_t out_size = 1;
  for (int d = 0; d < *ndim; d++) {
    L->out_shape[d] = shape[d];
    out_size *= (size_t)shape[d];
  }
  L->out_size = out_size;
  if (out_size > m->max_features) m->max_features = out_size;
  return 0;
}

int kd_model_parse(kd_model *m, const char *json_text, const char *source, kd_error *err) {
  memset(m, 0, sizeof *m);
  cJSON *root = cJSON_Parse(json_text);
  if (!root) {
    const char *at = cJSON_GetErrorPtr();
    int line = 1;
    for (const char *p = json_text; at && p < at && *p; p++) line += *p == '\n';
    return kd_fail(err, "%s: not valid JSON (syntax error near line %d)", source, line);
  }
  int rc = -1;
  if (!cJSON_IsObject(root)) {
    kd_fail(err, "%s: the model spec must be a JSON object", source);
    goto done;
  }
  for (const cJSON *f = root->child; f; f = f->next)
    if (strcmp(f->string, "name") && strcmp(f->string, "input") && strcmp(f->string, "layers") &&
        strcmp(f->string, "description")) {
      kd_fail(err, "%s: unknown top-level field '%s' (expected name, input, layers)", source,
              f->string);
      goto done;
    }
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
  if (name && !cJSON_IsString(name)) {
    kd_fail(err, "%s: field 'name' must be a string", source);
    goto done;
  }
  snprintf(m->name, sizeof m->name, "%s", name ? name->valuestring : "unnamed");
  const cJSON *input = cJSON_GetObjectItemCaseSensitive(root, "input");
  int n_in = cJSON_IsArray(input) ? cJSON_GetArraySize(input) : 0;
  if (n_in < 1 || n_in > 3) {
    kd_fail(err, "%s: field 'input' must be a list of 1 to 3 positive sizes, e.g. [1, 28, 28]",
            source);
    goto done;
  }
  int64_t shape[3];
  m->input_size = 1;
  for (int d = 0; d < n_in; d++) {
    const cJSON *v = cJSON_GetArrayItem(input, d);
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble != floor(v->valuedouble) ||
        v->valuedouble > (double)KD_MAX_ELEMS) {
      kd_fail(err, "%s: input[%d] must be a positive integer", source, d);
      goto done;
    }
    shape[d] = m->input_shape[d] = (int64_t)v->valuedouble;
    if ((size_t)shape[d] > KD_MAX_ELEMS / m->input_size) {
      kd_fail(err, "%s: input size overflows", source);
      goto done;
    }
    m->input_size *= (size_t)shape[d];
  }
  m->input_ndim = n_in;
  m->max_features = m->input_size;
  const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
  int n = cJSON_IsArray(layers) ? cJSON_GetArraySize(layers) : 0;
  if (n < 1) {
    kd_fail(err, "%s: field 'layers' must be a non-empty list", source);
    goto done;
  }
  m->layers = calloc((size_t)n, sizeof *m->layers);
  if (!m->layers) {
    kd_fail(err, "out of host memory");
    goto done;
  }
  m->num_layers = n;
  int ndim = n_in;
  for (int i = 0; i < n; i++)
    if (parse_layer(m, cJSON_GetArrayItem(layers, i), i, &ndim, shape, source, err)) goto done;
  if (ndim != 1) {
    kd_fail(err, "%s: the last layer must produce flat logits [classes], not rank %d", source,
            ndim);
    goto done;
  }
  m->num_classes = (size_t)shape[0];
  if (m->num_params == 0) {
    kd_fail(err, "%s: the model has no trainable layer (add a dense layer)", source);
    goto done;
  }
  m->spec_json = strdup(json_text);
  rc = m->spec_json ? 0 : kd_fail(err, "out of host memory");
done:
  cJSON_Delete(root);
  if (rc) kd_model_free(m);
  return rc;
}

int kd_model_load(kd_model *m, const char *path, kd_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return kd_fail(err, "%s: cannot open the model spec (%s)", path, strerror(errno));
  char *text = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len + 4096 + 1 > cap) {
      cap = cap ? cap * 2 : 8192;
      char *grown = realloc(text, cap);
      if (!grown || cap > ((size_t)16 << 20)) {
        free(grown ? grown : text);
        fclose(f);
        return kd_fail(err, "%s: the model spec is too large (over 16 MiB)", path);
      }
      text = grown;
    }
    size_t got = fread(text + len, 1, 4096, f);
    len += got;
    if (got < 4096) break;
  }
  fclose(f);
  text[len] = '\0';
  int rc = kd_model_parse(m, text, path, err);
  free(text);
  return rc;
}

void kd_model_free(kd_model *m) {
  free(m->layers);
  free(m->params);
  free(m->spec_json);
  memset(m, 0, sizeof *m);
}

void kd_model_init_params(const kd_model *m, float *host_params, uint64_t seed) {
  memset(host_params, 0, m->param_floats * sizeof(float));
  kd_rng r;
  kd_rng_seed(&r, seed, 0x494E4954ull); /* "INIT" */
  for (int i = 0; i < m->num_layers; i++) {
    const kd_layer *L = &m->layers[i];
    if (L->type != KD_LAYER_DENSE) continue;
    int rectified = 0;
    for (int j = i + 1; j < m->num_layers && !rectified; j++) {
      if (m->layers[j].type == KD_LAYER_ACTIVATION)
        rectified = m->layers[j].act == KD_ACT_RELU || m->layers[j].act == KD_ACT_GELU;
      if (m->layers[j].type == KD_LAYER_DENSE || m->layers[j].type == KD_LAYER_ACTIVATION) break;
    }
    double fan_in = (double)L->in_size, fan_out = (double)L->out_size;
    double bound = rectified ? sqrt(6.0 / fan_in) : sqrt(6.0 / (fan_in + fan_out));
    size_t n = L->in_size * L->out_size;
    for (size_t k = 0; k < n; k++)
      host_params[L->w_off + k] = (float)((2.0 * kd_rng_uniform(&r) - 1.0) * bound);
  }
}

size_t kd_model_count_params(const kd_model *m) {
  size_t n = 0;
  for (int i = 0; i < m->num_params; i++) n += m->params[i].numel;
  return n;
}
