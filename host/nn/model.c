/* Model spec parsing (cJSON) and checking, parameter layout and initialisation. */
#include "nn/model.h"

#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "runtime/file_io.h"
#include "train/rng.h"

/* Largest tensor we accept from a spec: arenas are indexed with 32 bits. */
#define KD_MAX_ELEMS ((size_t)1 << 31)

/* What parsing one list of layers needs to know and fill. */
typedef struct parse_ctx {
  kd_model *m;
  const char *source;
  kd_error *err;
} parse_ctx;

static int fail_at(parse_ctx *c, const char *where, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at(parse_ctx *c, const char *where, const char *type, const char *fmt, ...) {
  char detail[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  return kd_fail(c->err, "%s: %s (%s) %s", c->source, where, type, detail);
}

static int only_fields(parse_ctx *c, const cJSON *obj, const char *const *allowed,
                       const char *where, const char *type) {
  for (const cJSON *f = obj->child; f; f = f->next) {
    /* JSON readers disagree on repeated keys (cJSON keeps the first, Python the last), so a
     * spec with one would mean two networks. */
    for (const cJSON *g = obj->child; g != f; g = g->next)
      if (!strcmp(g->string, f->string))
        return fail_at(c, where, type, "has the field '%s' twice", f->string);
    int ok = 0;
    for (int a = 0; allowed[a]; a++) ok |= !strcmp(f->string, allowed[a]);
    if (!ok) return fail_at(c, where, type, "has unknown field '%s'", f->string);
  }
  return 0;
}

/* Reads an integer field >= min; absent: *out = dflt, or an error when required. */
static int int_field(parse_ctx *c, const cJSON *obj, const char *field, int required,
                     int64_t min, int64_t dflt, int64_t *out, const char *where,
                     const char *type) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
  if (!v) {
    if (required) return fail_at(c, where, type, "needs the field '%s'", field);
    *out = dflt;
    return 0;
  }
  if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < (double)min)
    return fail_at(c, where, type, "field '%s' must be an integer >= %lld", field,
                   (long long)min);
  if (v->valuedouble > (double)KD_MAX_ELEMS)
    return fail_at(c, where, type, "field '%s' is too large (%g; at most 2^31)", field,
                   v->valuedouble);
  *out = (int64_t)v->valuedouble;
  return 0;
}

/* A kernel size from JSON: an integer in [1, 4096], else 0 (checked before converting: a double
 * beyond int64_t's range has no defined conversion, and 2.5 is no size). */
static int64_t kernel_size(double v) {
  return v >= 1 && v <= 4096 && v == floor(v) ? (int64_t)v : 0;
}

static int bool_field(parse_ctx *c, const cJSON *obj, const char *field, int dflt, int *out,
                      const char *where, const char *type) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
  if (!v) {
    *out = dflt;
    return 0;
  }
  if (!cJSON_IsBool(v)) return fail_at(c, where, type, "field '%s' must be true or false", field);
  *out = cJSON_IsTrue(v);
  return 0;
}

static int float_field(parse_ctx *c, const cJSON *obj, const char *field, double lo, double hi,
                       int hi_open, double dflt, float *out, const char *where, const char *type) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
  if (!v) {
    *out = (float)dflt;
    return 0;
  }
  if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo) ||
      (hi_open ? !(v->valuedouble < hi) : !(v->valuedouble <= hi)))
    return fail_at(c, where, type, "field '%s' must be in [%g, %g%c", field, lo, hi,
                   hi_open ? ')' : ']');
  *out = (float)v->valuedouble;
  return 0;
}

static kd_param *add_tensor(parse_ctx *c, kd_param **list, int *count, size_t *floats,
                            const char *key, const char *leaf, int ndim, const int64_t *shape,
                            size_t *off_out) {
  kd_param *grown = realloc(*list, (size_t)(*count + 1) * sizeof *grown);
  if (!grown) return kd_fail(c->err, "out of host memory"), NULL;
  *list = grown;
  kd_param *p = &grown[(*count)++];
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s.%s", key, leaf);
  p->ndim = ndim;
  p->numel = 1;
  for (int d = 0; d < ndim; d++) {
    p->shape[d] = shape[d];
    p->numel *= (size_t)shape[d];
  }
  /* 16-float alignment, as the arena does, so offsets are valid arena offsets. */
  p->off = *floats;
  *floats += (p->numel + 15) / 16 * 16;
  *off_out = p->off;
  return p;
}

static int add_param(parse_ctx *c, const char *key, const char *leaf, int ndim,
                     const int64_t *shape, size_t *off) {
  kd_model *m = c->m;
  return add_tensor(c, &m->params, &m->num_params, &m->param_floats, key, leaf, ndim, shape, off)
             ? 0
             : -1;
}

static void set_out(kd_layer *L, int ndim, int64_t d0, int64_t d1, int64_t d2) {
  L->out_ndim = ndim;
  L->out_shape[0] = d0;
  L->out_shape[1] = d1;
  L->out_shape[2] = d2;
  L->out_size = (size_t)d0 * (size_t)(ndim > 1 ? d1 : 1) * (size_t)(ndim > 2 ? d2 : 1);
}

static int parse_list(parse_ctx *c, const cJSON *arr, const char *where_prefix,
                      const char *key_prefix, int ndim, const int64_t *shape, kd_layer **out,
                      int *count);

/* The spatial output of a window of kh x kw at stride/pad over H x W. */
static int window_out(parse_ctx *c, const char *where, const char *type, int64_t H, int64_t W,
                      size_t kh, size_t kw, size_t stride, size_t pad, int64_t *OH,
                      int64_t *OW) {
  if ((int64_t)kh > H + 2 * (int64_t)pad || (int64_t)kw > W + 2 * (int64_t)pad)
    return fail_at(c, where, type, "kernel %zux%zu is larger than its padded input %lldx%lld",
                   kh, kw, (long long)(H + 2 * (int64_t)pad), (long long)(W + 2 * (int64_t)pad));
  *OH = (H + 2 * (int64_t)pad - (int64_t)kh) / (int64_t)stride + 1;
  *OW = (W + 2 * (int64_t)pad - (int64_t)kw) / (int64_t)stride + 1;
  return 0;
}

static int parse_layer(parse_ctx *c, const cJSON *spec, kd_layer *L, const char *where,
                       const char *key, int ndim, const int64_t *shape) {
  kd_model *m = c->m;
  memset(L, 0, sizeof *L);
  L->id = m->num_flat++;
  snprintf(L->key, sizeof L->key, "%s", key);
  L->in_ndim = ndim;
  L->in_size = 1;
  for (int d = 0; d < ndim; d++) {
    L->in_shape[d] = shape[d];
    L->in_size *= (size_t)shape[d];
  }
  if (!cJSON_IsObject(spec))
    return kd_fail(c->err, "%s: %s must be an object like {\"type\": \"dense\", ...}", c->source,
                   where);
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(spec, "type");
  if (!cJSON_IsString(t)) return kd_fail(c->err, "%s: %s needs a string field 'type'", c->source, where);
  const char *type = t->valuestring;
  int64_t v;

  if (!strcmp(type, "flatten")) {
    static const char *const allowed[] = {"type", NULL};
    if (only_fields(c, spec, allowed, where, type)) return -1;
    L->type = KD_LAYER_FLATTEN;
    set_out(L, 1, (int64_t)L->in_size, 0, 0);
  } else if (!strcmp(type, "dense")) {
    static const char *const allowed[] = {"type", "units", "bias", NULL};
    if (only_fields(c, spec, allowed, where, type) ||
        int_field(c, spec, "units", 1, 1, 0, &v, where, type) ||
        bool_field(c, spec, "bias", 1, &L->bias, where, type))
      return -1;
    if (ndim != 1)
      return fail_at(c, where, type,
                     "needs a flat input but gets rank %d; add {\"type\": \"flatten\"} before it",
                     ndim);
    if ((size_t)v > KD_MAX_ELEMS / L->in_size)
      return fail_at(c, where, type, "weight [%lld, %zu] is too large", (long long)v, L->in_size);
    L->type = KD_LAYER_DENSE;
    int64_t wshape[2] = {v, (int64_t)L->in_size};
    if (add_param(c, key, "weight", 2, wshape, &L->w_off) ||
        (L->bias && add_param(c, key, "bias", 1, &v, &L->b_off)))
      return -1;
    set_out(L, 1, v, 0, 0);
  } else if (!strcmp(type, "conv2d")) {
    static const char *const allowed[] = {"type", "filters", "kernel", "stride", "padding",
                                          "bias", NULL};
    int64_t filters, stride, pad;
    if (only_fields(c, spec, allowed, where, type) ||
        int_field(c, spec, "filters", 1, 1, 0, &filters, where, type) ||
        int_field(c, spec, "stride", 0, 1, 1, &stride, where, type) ||
        int_field(c, spec, "padding", 0, 0, 0, &pad, where, type) ||
        bool_field(c, spec, "bias", 1, &L->bias, where, type))
      return -1;
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(spec, "kernel");
    int64_t kh = 0, kw = 0;
    if (cJSON_IsArray(k) && cJSON_GetArraySize(k) == 2 &&
        cJSON_IsNumber(cJSON_GetArrayItem(k, 0)) && cJSON_IsNumber(cJSON_GetArrayItem(k, 1))) {
      kh = kernel_size(cJSON_GetArrayItem(k, 0)->valuedouble);
      kw = kernel_size(cJSON_GetArrayItem(k, 1)->valuedouble);
    } else if (cJSON_IsNumber(k)) {
      kh = kw = kernel_size(k->valuedouble);
    } else if (!k) {
      return fail_at(c, where, type, "needs the field 'kernel'");
    }
    if (kh < 1 || kw < 1 || kh > 4096 || kw > 4096)
      return fail_at(c, where, type, "field 'kernel' must be a positive size or [height, width]");
    if (ndim != 3)
      return fail_at(c, where, type, "needs a [channels, height, width] input but gets rank %d",
                     ndim);
    L->type = KD_LAYER_CONV2D;
    L->kh = (size_t)kh;
    L->kw = (size_t)kw;
    L->stride = (size_t)stride;
    L->pad = (size_t)pad;
    int64_t OH = 0, OW = 0;
    if (window_out(c, where, type, shape[1], shape[2], L->kh, L->kw, L->stride, L->pad, &OH, &OW))
      return -1;
    if ((size_t)filters > KD_MAX_ELEMS / ((size_t)OH * (size_t)OW) ||
        (size_t)filters > KD_MAX_ELEMS / ((size_t)shape[0] * L->kh * L->kw))
      return fail_at(c, where, type, "is too large");
    int64_t wshape[4] = {filters, shape[0], kh, kw};
    kd_param *p = add_tensor(c, &m->params, &m->num_params, &m->param_floats, key, "weight", 4,
                             wshape, &L->w_off);
    if (!p || (L->bias && add_param(c, key, "bias", 1, &filters, &L->b_off))) return -1;
    set_out(L, 3, filters, OH, OW);
  } else if (!strcmp(type, "maxpool2d") || !strcmp(type, "avgpool2d")) {
    static const char *const allowed[] = {"type", "size", "stride", "padding", NULL};
    int64_t size, stride, pad;
    if (only_fields(c, spec, allowed, where, type) ||
        int_field(c, spec, "size", 1, 1, 0, &size, where, type) ||
        int_field(c, spec, "stride", 0, 1, size, &stride, where, type) ||
        int_field(c, spec, "padding", 0, 0, 0, &pad, where, type))
      return -1;
    if (ndim != 3)
      return fail_at(c, where, type, "needs a [channels, height, width] input but gets rank %d",
                     ndim);
    if (2 * pad > size)
      return fail_at(c, where, type, "padding %lld must be at most half of size %lld",
                     (long long)pad, (long long)size);
    L->type = type[0] == 'm' ? KD_LAYER_MAXPOOL2D : KD_LAYER_AVGPOOL2D;
    L->kh = L->kw = (size_t)size;
    L->stride = (size_t)stride;
    L->pad = (size_t)pad;
    int64_t OH = 0, OW = 0;
    if (window_out(c, where, type, shape[1], shape[2], L->kh, L->kw, L->stride, L->pad, &OH, &OW))
      return -1;
    set_out(L, 3, shape[0], OH, OW);
  } else if (!strcmp(type, "global_avgpool")) {
    static const char *const allowed[] = {"type", NULL};
    if (only_fields(c, spec, allowed, where, type)) return -1;
    if (ndim != 3)
      return fail_at(c, where, type, "needs a [channels, height, width] input but gets rank %d",
                     ndim);
    L->type = KD_LAYER_GLOBAL_AVGPOOL;
    set_out(L, 1, shape[0], 0, 0);
  } else if (!strcmp(type, "batchnorm1d") || !strcmp(type, "batchnorm2d")) {
    static const char *const allowed[] = {"type", "momentum", "eps", NULL};
    if (only_fields(c, spec, allowed, where, type) ||
        float_field(c, spec, "momentum", 0, 1, 0, 0.1, &L->momentum, where, type) ||
        float_field(c, spec, "eps", 1e-30, 1, 0, 1e-5, &L->eps, where, type))
      return -1;
    int want = type[9] == '1' ? 1 : 3;
    if (ndim != want)
      return fail_at(c, where, type, "needs a %s input but gets rank %d",
                     want == 1 ? "flat [features]" : "[channels, height, width]", ndim);
    L->type = KD_LAYER_BATCHNORM;
    int64_t C = shape[0];
    size_t unused;
    if (add_param(c, key, "weight", 1, &C, &L->w_off) ||
        add_param(c, key, "bias", 1, &C, &L->b_off) ||
        !add_tensor(c, &m->buffers, &m->num_buffers, &m->buffer_floats, key, "running_mean", 1, &C,
                    &L->rm_off) ||
        !add_tensor(c, &m->buffers, &m->num_buffers, &m->buffer_floats, key, "running_var", 1, &C,
                    &L->rv_off))
      return -1;
    (void)unused;
    char(*grown)[64] = realloc(m->bn_keys, (size_t)(m->num_bn + 1) * sizeof *grown);
    if (!grown) return kd_fail(c->err, "out of host memory");
    m->bn_keys = grown;
    snprintf(m->bn_keys[m->num_bn], sizeof m->bn_keys[0], "%s", key);
    L->bn_index = m->num_bn++;
    set_out(L, ndim, shape[0], shape[1], shape[2]);
  } else if (!strcmp(type, "dropout")) {
    static const char *const allowed[] = {"type", "rate", NULL};
    if (only_fields(c, spec, allowed, where, type)) return -1;
    if (!cJSON_GetObjectItemCaseSensitive(spec, "rate"))
      return fail_at(c, where, type, "needs the field 'rate'");
    if (float_field(c, spec, "rate", 0, 1, 1, 0, &L->rate, where, type)) return -1;
    L->type = KD_LAYER_DROPOUT;
    set_out(L, ndim, shape[0], shape[1], shape[2]);
  } else if (!strcmp(type, "residual")) {
    static const char *const allowed[] = {"type", "layers", "projection", NULL};
    int projection = 0;
    if (only_fields(c, spec, allowed, where, type) ||
        bool_field(c, spec, "projection", 0, &projection, where, type))
      return -1;
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(spec, "layers");
    if (!cJSON_IsArray(sub) || cJSON_GetArraySize(sub) < 1)
      return fail_at(c, where, type, "needs a non-empty list 'layers'");
    L->type = KD_LAYER_RESIDUAL;
    char sub_where[300], sub_key[80];
    if (snprintf(sub_where, sizeof sub_where, "%s.layers", where) >= (int)sizeof sub_where ||
        snprintf(sub_key, sizeof sub_key, "%s.layers", key) >= (int)sizeof sub_key)
      return fail_at(c, where, type, "is nested too deeply");
    if (parse_list(c, sub, sub_where, sub_key, ndim, shape, &L->sub, &L->num_sub)) return -1;
    const kd_layer *last = &L->sub[L->num_sub - 1];
    int same = last->out_ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = last->out_shape[d] == shape[d];
    if (!projection && !same)
      return fail_at(c, where, type,
                     "maps its input of %zu features to %zu (shape changes): the sum needs equal "
                     "shapes; set \"projection\": true for a 1x1 convolution on the skip path",
                     L->in_size, last->out_size);
    if (projection) {
      if (ndim != 3 || last->out_ndim != 3)
        return fail_at(c, where, type, "projection needs [channels, height, width] tensors");
      /* The stride of the 1x1 projection is whatever maps the input onto the output. */
      int64_t s = 0;
      for (int64_t cand = 1; cand <= shape[1] && cand <= shape[2] && !s; cand++)
        if ((shape[1] - 1) / cand + 1 == last->out_shape[1] &&
            (shape[2] - 1) / cand + 1 == last->out_shape[2])
          s = cand;
      if (!s)
        return fail_at(c, where, type,
                       "maps %lldx%lld to %lldx%lld, which no strided 1x1 projection matches",
                       (long long)shape[1], (long long)shape[2], (long long)last->out_shape[1],
                       (long long)last->out_shape[2]);
      L->proj = calloc(1, sizeof *L->proj);
      if (!L->proj) return kd_fail(c->err, "out of host memory");
      kd_layer *P = L->proj;
      P->type = KD_LAYER_CONV2D;
      P->id = m->num_flat++;
      if (snprintf(P->key, sizeof P->key, "%s.projection", key) >= (int)sizeof P->key)
        return fail_at(c, where, type, "is nested too deeply");
      P->in_ndim = 3;
      memcpy(P->in_shape, shape, 3 * sizeof *shape);
      P->in_size = L->in_size;
      P->kh = P->kw = 1;
      P->stride = (size_t)s;
      int64_t wshape[4] = {last->out_shape[0], shape[0], 1, 1};
      if (!add_tensor(c, &m->params, &m->num_params, &m->param_floats, P->key, "weight", 4, wshape,
                      &P->w_off))
        return -1;
      set_out(P, 3, last->out_shape[0], last->out_shape[1], last->out_shape[2]);
    }
    set_out(L, last->out_ndim, last->out_shape[0], last->out_shape[1], last->out_shape[2]);
  } else if (kd_activation_parse(type, &L->act) == 0) {
    static const char *const allowed[] = {"type", NULL};
    if (only_fields(c, spec, allowed, where, type)) return -1;
    L->type = KD_LAYER_ACTIVATION;
    set_out(L, ndim, shape[0], shape[1], shape[2]);
  } else {
    return kd_fail(c->err,
                   "%s: %s has unknown layer type '%s' (known: flatten, dense, conv2d, "
                   "maxpool2d, avgpool2d, global_avgpool, batchnorm1d, batchnorm2d, dropout, "
                   "residual, relu, gelu, tanh, sigmoid)",
                   c->source, where, type);
  }
  if (L->out_size > KD_MAX_ELEMS) return fail_at(c, where, type, "output is too large");
  return 0;
}

static int parse_list(parse_ctx *c, const cJSON *arr, const char *where_prefix,
                      const char *key_prefix, int ndim, const int64_t *shape, kd_layer **out,
                      int *count) {
  int n = cJSON_GetArraySize(arr);
  *out = calloc((size_t)n, sizeof **out);
  if (!*out) return kd_fail(c->err, "out of host memory");
  *count = n;
  int64_t cur[3] = {shape[0], ndim > 1 ? shape[1] : 0, ndim > 2 ? shape[2] : 0};
  const cJSON *item = arr->child; /* walked, not indexed: cJSON_GetArrayItem is O(i) */
  for (int i = 0; i < n; i++, item = item->next) {
    char where[320], key[80];
    if (snprintf(where, sizeof where, "%s[%d]", where_prefix, i) >= (int)sizeof where ||
        snprintf(key, sizeof key, "%s.%d", key_prefix, i) >= (int)sizeof key ||
        strlen(key) >= sizeof(*out)->key)
      return kd_fail(c->err, "%s: %s: layers are nested too deeply", c->source, where_prefix);
    kd_layer *L = &(*out)[i];
    if (parse_layer(c, item, L, where, key, ndim, cur)) return -1;
    ndim = L->out_ndim;
    memcpy(cur, L->out_shape, sizeof cur);
  }
  return 0;
}

/* Offset of the first byte that is not part of well-formed UTF-8 (RFC 3629: no overlong forms,
 * no surrogates, at most U+10FFFF), or -1 when all of text is. JSON text must be UTF-8, and the
 * spec travels on into checkpoints and safetensors headers that other tools parse. */
static long utf8_error_at(const unsigned char *text) {
  for (const unsigned char *p = text; *p;) {
    int n = *p < 0x80 ? 0                     /* continuation bytes after the lead byte */
            : (*p & 0xE0) == 0xC0 ? 1
            : (*p & 0xF0) == 0xE0 ? 2
            : (*p & 0xF8) == 0xF0 ? 3
                                  : -1;
    if (n < 0 || (n == 1 && *p < 0xC2) || (n == 3 && *p > 0xF4)) return (long)(p - text);
    for (int i = 1; i <= n; i++)
      if ((p[i] & 0xC0) != 0x80) return (long)(p - text);
    if ((n == 2 && *p == 0xE0 && p[1] < 0xA0) || (n == 2 && *p == 0xED && p[1] >= 0xA0) ||
        (n == 3 && *p == 0xF0 && p[1] < 0x90) || (n == 3 && *p == 0xF4 && p[1] >= 0x90))
      return (long)(p - text);
    p += n + 1;
  }
  return -1;
}

int kd_model_parse(kd_model *m, const char *json_text, const char *source, kd_error *err) {
  memset(m, 0, sizeof *m);
  parse_ctx c = {m, source, err};
  long bad_byte = utf8_error_at((const unsigned char *)json_text);
  if (bad_byte >= 0)
    return kd_fail(err, "%s: not valid UTF-8 (byte %ld); JSON text must be UTF-8", source,
                   bad_byte);
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithOpts(json_text, &end, 1);
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
  for (const cJSON *f = root->child; f; f = f->next) {
    for (const cJSON *g = root->child; g != f; g = g->next)
      if (!strcmp(g->string, f->string)) {
        kd_fail(err, "%s: the top-level field '%s' appears twice", source, f->string);
        goto done;
      }
    if (strcmp(f->string, "name") && strcmp(f->string, "input") && strcmp(f->string, "layers") &&
        strcmp(f->string, "description")) {
      kd_fail(err, "%s: unknown top-level field '%s' (expected name, input, layers)", source,
              f->string);
      goto done;
    }
  }
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
  if (name && !cJSON_IsString(name)) {
    kd_fail(err, "%s: field 'name' must be a string", source);
    goto done;
  }
  snprintf(m->name, sizeof m->name, "%s", name ? name->valuestring : "unnamed");
  const cJSON *input = cJSON_GetObjectItemCaseSensitive(root, "input");
  int n_in = cJSON_IsArray(input) ? cJSON_GetArraySize(input) : 0;
  if (n_in != 1 && n_in != 3) {
    kd_fail(err,
            "%s: field 'input' must be [features] or [channels, height, width], e.g. [1, 28, 28]",
            source);
    goto done;
  }
  m->input_size = 1;
  for (int d = 0; d < n_in; d++) {
    const cJSON *v = cJSON_GetArrayItem(input, d);
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble != floor(v->valuedouble) ||
        v->valuedouble > (double)KD_MAX_ELEMS) {
      kd_fail(err, "%s: input[%d] must be a positive integer", source, d);
      goto done;
    }
    m->input_shape[d] = (int64_t)v->valuedouble;
    if ((size_t)m->input_shape[d] > KD_MAX_ELEMS / m->input_size) {
      kd_fail(err, "%s: input size overflows", source);
      goto done;
    }
    m->input_size *= (size_t)m->input_shape[d];
  }
  m->input_ndim = n_in;
  const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
  if (!cJSON_IsArray(layers) || cJSON_GetArraySize(layers) < 1) {
    kd_fail(err, "%s: field 'layers' must be a non-empty list", source);
    goto done;
  }
  if (parse_list(&c, layers, "layers", "layers", n_in, m->input_shape, &m->layers,
                 &m->num_layers))
    goto done;
  const kd_layer *last = &m->layers[m->num_layers - 1];
  if (last->out_ndim != 1) {
    kd_fail(err, "%s: the last layer must produce flat logits [classes], not rank %d", source,
            last->out_ndim);
    goto done;
  }
  m->num_classes = (size_t)last->out_shape[0];
  if (m->num_params == 0) {
    kd_fail(err, "%s: the model has no trainable layer", source);
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
  char *text, what[4200];
  size_t len;
  snprintf(what, sizeof what, "%s: the model spec", path);
  if (kd_read_file(what, path, (size_t)16 << 20, 0, &text, &len, err)) return -1;
  int rc = kd_model_parse(m, text, path, err);
  free(text);
  return rc;
}

static void free_layers(kd_layer *layers, int n) {
  for (int i = 0; layers && i < n; i++) {
    free_layers(layers[i].sub, layers[i].num_sub);
    free(layers[i].proj);
  }
  free(layers);
}

void kd_model_free(kd_model *m) {
  free_layers(m->layers, m->num_layers);
  free(m->params);
  free(m->buffers);
  free(m->bn_keys);
  free(m->spec_json);
  memset(m, 0, sizeof *m);
}

int kd_layer_has_params(const kd_layer *L) {
  if (L->type == KD_LAYER_DENSE || L->type == KD_LAYER_CONV2D || L->type == KD_LAYER_BATCHNORM)
    return 1;
  for (int i = 0; i < L->num_sub; i++)
    if (kd_layer_has_params(&L->sub[i])) return 1;
  return L->proj != NULL;
}

static void uniform(kd_rng *r, float *x, size_t n, double bound) {
  for (size_t k = 0; k < n; k++) x[k] = (float)((2.0 * kd_rng_uniform(r) - 1.0) * bound);
}

/* Whether the next layer with an effect on scale after layers[i] is a relu or gelu. */
static int feeds_rectifier(const kd_layer *layers, int n, int i) {
  for (int j = i + 1; j < n; j++) {
    if (layers[j].type == KD_LAYER_ACTIVATION)
      return layers[j].act == KD_ACT_RELU || layers[j].act == KD_ACT_GELU;
    if (layers[j].type != KD_LAYER_DROPOUT && layers[j].type != KD_LAYER_BATCHNORM) return 0;
  }
  return 0;
}

static void init_list(const kd_layer *layers, int n, float *params, float *buffers, kd_rng *r) {
  for (int i = 0; i < n; i++) {
    const kd_layer *L = &layers[i];
    switch (L->type) {
      case KD_LAYER_DENSE: {
        double fan_in = (double)L->in_size, fan_out = (double)L->out_size;
        double bound = feeds_rectifier(layers, n, i) ? sqrt(6.0 / fan_in)
                                                     : sqrt(6.0 / (fan_in + fan_out));
        uniform(r, params + L->w_off, L->in_size * L->out_size, bound);
        break;
      }
      case KD_LAYER_CONV2D: {
        size_t fan_in = (size_t)L->in_shape[0] * L->kh * L->kw;
        uniform(r, params + L->w_off, (size_t)L->out_shape[0] * fan_in, sqrt(6.0 / (double)fan_in));
        break;
      }
      case KD_LAYER_BATCHNORM:
        for (int64_t ch = 0; ch < L->out_shape[0]; ch++) {
          params[L->w_off + (size_t)ch] = 1.0f;
          buffers[L->rv_off + (size_t)ch] = 1.0f;
        }
        break;
      case KD_LAYER_RESIDUAL:
        init_list(L->sub, L->num_sub, params, buffers, r);
        if (L->proj) init_list(L->proj, 1, params, buffers, r);
        break;
      default:
        break;
    }
  }
}

void kd_model_init_params(const kd_model *m, float *host_params, float *host_buffers,
                          uint64_t seed) {
  memset(host_params, 0, m->param_floats * sizeof(float));
  memset(host_buffers, 0, m->buffer_floats * sizeof(float));
  kd_rng r;
  kd_rng_seed(&r, seed, 0x494E4954ull); /* "INIT" */
  init_list(m->layers, m->num_layers, host_params, host_buffers, &r);
}

size_t kd_model_count_params(const kd_model *m) {
  size_t n = 0;
  for (int i = 0; i < m->num_params; i++) n += m->params[i].numel;
  return n;
}
