/* Recipe JSON -> command-line arguments. */
#include "cli/recipe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "runtime/file_io.h"

static char *read_text(const char *path, kd_error *err) {
  char *text, what[4200];
  size_t len;
  snprintf(what, sizeof what, "--config %s", path);
  return kd_read_file(what, path, (size_t)16 << 20, 0, &text, &len, err) ? NULL : text;
}

static int push(char ***v, int *n, const char *s) {
  char **grown = realloc(*v, (size_t)(*n + 2) * sizeof **v);
  if (!grown) return -1;
  *v = grown;
  if (!(grown[*n] = strdup(s))) return -1;
  grown[++*n] = NULL;
  return 0;
}

/* The value of one recipe key as the text of its command-line argument. */
static int value_text(const cJSON *v, char *buf, size_t len) {
  if (cJSON_IsString(v)) return snprintf(buf, len, "%s", v->valuestring) >= (int)len ? -1 : 0;
  if (cJSON_IsNumber(v)) {
    double d = v->valuedouble;
    if (d == floor(d) && fabs(d) < 9e15) snprintf(buf, len, "%.0f", d);
    else snprintf(buf, len, "%.17g", d);
    return 0;
  }
  if (cJSON_IsArray(v)) { /* "betas": [0.9, 0.999] -> "0.9,0.999" */
    size_t used = 0;
    buf[0] = '\0';
    for (const cJSON *e = v->child; e; e = e->next) {
      if (!cJSON_IsNumber(e) && !cJSON_IsString(e)) return -1;
      char one[64];
      if (value_text(e, one, sizeof one)) return -1;
      int w = snprintf(buf + used, len - used, "%s%s", used ? "," : "", one);
      if (w < 0 || (size_t)w >= len - used) return -1;
      used += (size_t)w;
    }
    return 0;
  }
  return -1;
}

static int is_text_key(const char *name, const char *const *text_keys) {
  for (const char *const *k = text_keys; k && *k; k++)
    if (!strcmp(*k, name)) return 1;
  return 0;
}

static const char *json_kind(const cJSON *v) {
  return cJSON_IsString(v) ? "a string"
         : cJSON_IsNumber(v) ? "a number"
         : cJSON_IsBool(v)   ? "true/false"
         : cJSON_IsArray(v)  ? "a list"
         : cJSON_IsObject(v) ? "an object"
                             : "null";
}

static int add_recipe(const char *path, const struct option *opts, const char *const *text_keys,
                      char ***v, int *n, char **inline_model, kd_error *err) {
  char *text = read_text(path, err);
  if (!text) return -1;
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
  int rc = 0;
  if (!root || !cJSON_IsObject(root)) {
    rc = root ? kd_fail(err, "--config %s: not a JSON object of options", path)
              : kd_fail(err, "--config %s: not valid JSON (near byte %ld)", path,
                        end ? (long)(end - text) : 0L);
    goto done;
  }
  if (strstr(text, "\\u0000")) {
    rc = kd_fail(err, "--config %s: holds \\u0000 (a NUL character), which no option value may "
                 "contain", path);
    goto done;
  }
  for (const cJSON *item = root->child; item && rc == 0; item = item->next) {
    char name[64];
    snprintf(name, sizeof name, "%s", item->string);
    for (char *p = name; *p; p++)
      if (*p == '_') *p = '-';
    const struct option *o = NULL;
    for (const struct option *k = opts; k->name; k++)
      if (!strcmp(k->name, name)) o = k;
    if (o && (!strcmp(name, "force") || !strcmp(name, "resume") || !strcmp(name, "run-dir"))) {
      rc = kd_fail(err, "--config %s: key '%s' is not a training setting: give --%s on the "
                   "command line", path, item->string, name);
      break;
    }
    if (!strcmp(name, "no-file-locking")) {
      rc = kd_fail(err, "--config %s: key '%s' is a setting of this machine, not of the run: give "
                   "--no-file-locking on the command line", path, item->string);
      break;
    }
    if (!o || !strcmp(name, "config") || !strcmp(name, "help")) {
      rc = kd_fail(err, "--config %s: unknown key '%s' (keys are this command's long options)",
                   path, item->string);
      break;
    }
    for (const cJSON *prev = root->child; prev != item && rc == 0; prev = prev->next) {
      char other[64]; /* lr_schedule and lr-schedule are the same key */
      snprintf(other, sizeof other, "%s", prev->string);
      for (char *p = other; *p; p++)
        if (*p == '_') *p = '-';
      if (!strcmp(other, name))
        rc = kd_fail(err, "--config %s: key '%s' is given twice%s%s%s", path, item->string,
                     strcmp(prev->string, item->string) ? " (as '" : "",
                     strcmp(prev->string, item->string) ? prev->string : "",
                     strcmp(prev->string, item->string) ? "')" : "");
    }
    if (rc) break;
    char flag[80], val[4096];
    snprintf(flag, sizeof flag, "--%s", name);
    const char *want = NULL;
    if (o->has_arg == no_argument) {
      if (!cJSON_IsBool(item)) want = "true or false";
      else if (cJSON_IsTrue(item) && push(v, n, flag)) rc = kd_fail(err, "out of host memory");
    } else if (!strcmp(name, "model") && cJSON_IsObject(item)) {
      free(*inline_model);
      if (!(*inline_model = cJSON_PrintUnformatted(item))) rc = kd_fail(err, "out of host memory");
    } else if (!strcmp(name, "betas")) {
      if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 2 ||
          !cJSON_IsNumber(cJSON_GetArrayItem(item, 0)) ||
          !cJSON_IsNumber(cJSON_GetArrayItem(item, 1)) || value_text(item, val, sizeof val))
        want = "a list of two numbers";
    } else if (is_text_key(name, text_keys)) {
      if (!cJSON_IsString(item) || value_text(item, val, sizeof val))
        want = !strcmp(name, "model") ? "a string (a spec file) or an object (the spec)"
                                      : "a string";
    } else if (!cJSON_IsNumber(item) || value_text(item, val, sizeof val)) {
      want = "a number";
    }
    if (want) {
      rc = kd_fail(err, "--config %s: key '%s' must be %s, not %s", path, item->string, want,
                   json_kind(item));
      break;
    }
    if (o->has_arg != no_argument && !(!strcmp(name, "model") && cJSON_IsObject(item)) &&
        (push(v, n, flag) || push(v, n, val)))
      rc = kd_fail(err, "out of host memory");
  }
done:
  cJSON_Delete(root);
  free(text);
  return rc;
}

int kd_recipe_expand(int argc, char **argv, const struct option *opts,
                     const char *const *text_keys, int *out_argc, char ***out_argv,
                     int *recipe_argc, const char **config_path, char **inline_model,
                     kd_error *err) {
  char **v = NULL;
  *inline_model = NULL;
  int n = 0, rc = 0;
  const char *config = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--")) break;
    const char *given = NULL;
    if (!strcmp(argv[i], "--config")) {
      if (i + 1 >= argc) return kd_fail(err, "--config needs a file");
      given = argv[i + 1];
    } else if (!strncmp(argv[i], "--config=", 9)) {
      given = argv[i] + 9;
    }
    if (given && config) return kd_fail(err, "--config is given twice (%s, %s)", config, given);
    if (given) config = given;
  }
  *config_path = config;
  if (push(&v, &n, argv[0])) rc = kd_fail(err, "out of host memory");
  if (rc == 0 && config) rc = add_recipe(config, opts, text_keys, &v, &n, inline_model, err);
  *recipe_argc = n - 1;
  for (int i = 1; rc == 0 && i < argc; i++) {
    if (!strcmp(argv[i], "--config")) {
      i++;
      continue;
    }
    if (!strncmp(argv[i], "--config=", 9)) continue;
    if (push(&v, &n, argv[i])) rc = kd_fail(err, "out of host memory");
  }
  if (rc) {
    kd_recipe_free(n, v);
    free(*inline_model);
    *inline_model = NULL;
    return -1;
  }
  *out_argc = n;
  *out_argv = v;
  return 0;
}

void kd_recipe_free(int argc, char **argv) {
  for (int i = 0; i < argc; i++) free(argv[i]);
  free(argv);
}
