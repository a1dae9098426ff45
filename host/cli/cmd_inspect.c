/* kdcl inspect FILE.h5 [--json]: what a kdcl HDF5 file holds (dataset, checkpoint, logits),
 * or a plain listing of any other HDF5 file. The description is built once as JSON and either
 * printed as is or rendered as text. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/flags.h"
#include "data/checkpoint.h"
#include "data/dataset.h"
#include "data/h5util.h"
#include "train/state_dict.h"

static void help(void) {
  printf(
      "usage: kdcl inspect FILE.h5 [--json]\n\n"
      "Describes an HDF5 file. A kdcl dataset: rows, input shape and type, classes, whether\n"
      "every label is in range, and the teacher outputs if present. A checkpoint: the model's\n"
      "name, every tensor with its shape, the optimizer, step/epoch, and whether the file is\n"
      "complete. A logits file: its shape. Any other HDF5 file: its groups and datasets with\n"
      "shapes and types. Exits 1 when the file is a kdcl dataset that training would refuse\n"
      "(the description says why), or is missing or not HDF5.\n\n"
      "  --json    print one JSON object on stdout instead of text (default: text)\n"
      "  --no-file-locking  open without HDF5 file locks (NFS; default: locking on)\n"
      "  --help    this text\n");
}

/* Exact integers in JSON (cJSON numbers are doubles, which lose int64/uint64 digits). */
static void add_i64(cJSON *o, const char *key, int64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%" PRId64, v);
  cJSON_AddRawToObject(o, key, buf);
}

static void add_u64(cJSON *o, const char *key, uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%" PRIu64, v);
  cJSON_AddRawToObject(o, key, buf);
}

static cJSON *shape_json(int ndim, const int64_t *dims) {
  cJSON *a = cJSON_CreateArray();
  for (int i = 0; i < ndim; i++) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, dims[i]);
    cJSON_AddItemToArray(a, cJSON_CreateRaw(buf));
  }
  return a;
}

/* {"path", "shape", "dtype"} of dataset loc/name; NULL when it cannot be opened. */
static cJSON *dataset_json(hid_t loc, const char *name, const char *path_for_json) {
  hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
  if (d < 0) {
    H5Eclear2(H5E_DEFAULT);
    return NULL;
  }
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "path", path_for_json);
  int64_t dims[32];
  int nd = 0;
  kd_error ignore;
  if (kd_h5_dataset_shape(d, path_for_json, 32, &nd, dims, &ignore) == 0)
    cJSON_AddItemToObject(o, "shape", shape_json(nd, dims));
  else
    cJSON_AddNullToObject(o, "shape");
  hid_t t = H5Dget_type(d);
  char tn[32] = "unknown";
  if (t >= 0) {
    kd_h5_type_name(t, tn, sizeof tn);
    H5Tclose(t);
  }
  cJSON_AddStringToObject(o, "dtype", tn);
  H5Dclose(d);
  return o;
}

/* Adds every attribute of obj that is a short string or one number to o. */
static herr_t attr_cb(hid_t obj, const char *name, const H5A_info_t *info, void *data) {
  (void)info;
  cJSON *o = data;
  char s[1024];
  double v;
  kd_error ignore;
  if (kd_h5_read_attr_string(obj, name, "", s, sizeof s, &ignore) == 0)
    cJSON_AddStringToObject(o, name, s);
  else if (kd_h5_read_attr_double(obj, name, "", &v, &ignore) == 0)
    cJSON_AddNumberToObject(o, name, v);
  H5Eclear2(H5E_DEFAULT);
  return 0;
}

static cJSON *attrs_json(hid_t obj) {
  cJSON *o = cJSON_CreateObject();
  hsize_t idx = 0;
  H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_cb, o);
  H5Eclear2(H5E_DEFAULT);
  return o;
}

/* ---- Generic listing ---- */

/* Attaches obj's attributes to o as "attrs" when there are any. */
static void add_attrs(cJSON *o, hid_t obj) {
  cJSON *a = attrs_json(obj);
  if (cJSON_GetArraySize(a) > 0)
    cJSON_AddItemToObject(o, "attrs", a);
  else
    cJSON_Delete(a);
}

static herr_t visit_cb(hid_t root, const char *name, const H5L_info_t *info, void *data) {
  cJSON *arr = data;
  char path[4200];
  snprintf(path, sizeof path, "/%s", name);
  if (info->type != H5L_TYPE_HARD) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", path);
    cJSON_AddStringToObject(o, "type", info->type == H5L_TYPE_SOFT ? "soft link" : "external link");
    cJSON_AddItemToArray(arr, o);
    return 0;
  }
  hid_t obj = H5Oopen(root, name, H5P_DEFAULT);
  if (obj < 0) {
    H5Eclear2(H5E_DEFAULT);
    return 0;
  }
  H5I_type_t t = H5Iget_type(obj);
  cJSON *o = NULL;
  if (t == H5I_DATASET) {
    o = dataset_json(root, name, path);
    if (o) {
      cJSON_AddStringToObject(o, "type", "dataset");
      add_attrs(o, obj);
    }
  } else {
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", path);
    cJSON_AddStringToObject(o, "type", t == H5I_GROUP ? "group" : "datatype");
    add_attrs(o, obj);
  }
  H5Oclose(obj);
  if (o) cJSON_AddItemToArray(arr, o);
  return 0;
}

static void add_listing(cJSON *root, hid_t file) {
  cJSON *arr = cJSON_AddArrayToObject(root, "objects");
  H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, visit_cb, arr);
  H5Eclear2(H5E_DEFAULT);
}

/* ---- Kinds ---- */

static void describe_dataset(cJSON *root, hid_t file, const char *path) {
  kd_dataset ds;
  kd_error err = {{0}};
  if (kd_dataset_open(&ds, path, &err)) {
    cJSON_AddFalseToObject(root, "valid");
    cJSON_AddStringToObject(root, "error", err.msg);
    add_listing(root, file);
    return;
  }
  cJSON_AddTrueToObject(root, "valid");
  add_i64(root, "rows", ds.num_rows);
  cJSON *in = dataset_json(file, "/inputs/x", "/inputs/x");
  if (in) {
    /* The sample shape, without the row dimension. */
    cJSON_AddItemToObject(in, "sample_shape", shape_json(ds.sample_ndim, ds.sample_shape));
    char layout[64];
    hid_t x = H5Dopen2(file, "/inputs/x", H5P_DEFAULT);
    if (x >= 0 && kd_h5_read_attr_string(x, "layout", "", layout, sizeof layout, &err) == 0)
      cJSON_AddStringToObject(in, "layout", layout);
    if (x >= 0) H5Dclose(x);
    H5Eclear2(H5E_DEFAULT);
    cJSON_AddNumberToObject(in, "scale", ds.scale);
    cJSON_AddNumberToObject(in, "mean", ds.mean);
    cJSON_AddNumberToObject(in, "std", ds.std);
    cJSON_AddItemToObject(root, "inputs", in);
  }
  cJSON *lab = dataset_json(file, "/labels/y", "/labels/y");
  if (lab) {
    cJSON_AddNumberToObject(lab, "num_classes", ds.num_classes);
    kd_error lerr = {{0}};
    if (kd_dataset_check_labels(&ds, &lerr) == 0) {
      cJSON_AddTrueToObject(lab, "in_range");
    } else {
      cJSON_AddFalseToObject(lab, "in_range");
      cJSON_AddStringToObject(lab, "error", lerr.msg);
    }
    cJSON_AddItemToObject(root, "labels", lab);
  }
  if (ds.teacher_kind != KD_TEACHER_NONE) {
    /* kd_dataset_open validated the attributes and shapes; the values are scanned here. */
    hid_t g = H5Gopen2(file, "/teacher", H5P_DEFAULT);
    cJSON *t = g >= 0 ? attrs_json(g) : cJSON_CreateObject();
    static const char *const keys[4] = {"kind", "teacher_id", "num_classes", "k"};
    for (int i = 0; i < 4; i++) cJSON_DeleteItemFromObjectCaseSensitive(t, keys[i]);
    cJSON_AddStringToObject(t, "kind", ds.teacher_kind == KD_TEACHER_LOGITS ? "logits" : "topk");
    cJSON_AddStringToObject(t, "teacher_id", ds.teacher_id);
    cJSON_AddNumberToObject(t, "num_classes", ds.teacher_classes);
    cJSON_AddNumberToObject(t, "k", ds.teacher_k);
    kd_error terr = {{0}};
    if (kd_dataset_check_teacher(&ds, &terr) == 0) {
      cJSON_AddTrueToObject(t, "values_ok");
    } else {
      cJSON_AddFalseToObject(t, "values_ok");
      cJSON_AddStringToObject(t, "error", terr.msg);
    }
    cJSON *arr = cJSON_AddArrayToObject(t, "datasets");
    char **names = NULL;
    size_t n = 0;
    if (g >= 0 && kd_h5_list_group(g, "/teacher", &names, &n, &err) == 0) {
      for (size_t i = 0; i < n; i++) {
        char p[4200];
        snprintf(p, sizeof p, "/teacher/%s", names[i]);
        cJSON *d = kd_h5_is_dataset(g, names[i]) ? dataset_json(g, names[i], p) : NULL;
        if (d) cJSON_AddItemToArray(arr, d);
      }
      kd_h5_free_names(names, n);
    }
    if (g >= 0) H5Gclose(g);
    H5Eclear2(H5E_DEFAULT);
    cJSON_AddItemToObject(root, "teacher", t);
  } else {
    cJSON_AddNullToObject(root, "teacher");
  }
  kd_dataset_close(&ds);
}

static int64_t read_i64_scalar(hid_t file, const char *name, int *ok) {
  int64_t v = 0;
  *ok = 0;
  if (!kd_h5_is_dataset(file, name)) return 0;
  hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
  if (d >= 0) {
    hid_t s = H5Dget_space(d);
    if (s >= 0 && H5Sget_simple_extent_npoints(s) == 1 &&
        H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) >= 0)
      *ok = 1;
    if (s >= 0) H5Sclose(s);
    H5Dclose(d);
  }
  H5Eclear2(H5E_DEFAULT);
  return v;
}

/* Whether eval, export and --init/--resume would take the checkpoint: complete, readable, and
 * its /model exactly its spec's state_dict. */
static void checkpoint_validity(cJSON *root, const char *path, int complete) {
  kd_error err = {{0}};
  kd_checkpoint ck;
  int rc = complete ? 0 : kd_fail(&err, "%s: incomplete (no complete=1: the writer was "
                                  "interrupted)", path);
  if (rc == 0 && (rc = kd_checkpoint_read(path, &ck, &err)) == 0) {
    rc = ck.model_config ? kd_state_dict_check(&ck, path, &err)
                         : kd_fail(&err, "%s: no /meta/model_config (the model spec)", path);
    kd_checkpoint_free(&ck);
  }
  cJSON_AddBoolToObject(root, "valid", rc == 0);
  if (rc) cJSON_AddStringToObject(root, "error", err.msg);
}

static void describe_checkpoint(cJSON *root, hid_t file, const char *path) {
  kd_error err = {{0}};
  int32_t complete = 0;
  size_t n;
  if (kd_h5_has_attr(file, "complete"))
    kd_h5_read_attr_ints(file, "complete", path, &complete, 1, &n, &err);
  cJSON_AddBoolToObject(root, "complete", complete == 1);
  checkpoint_validity(root, path, complete == 1);

  char *cfg = NULL;
  cJSON *model = cJSON_AddObjectToObject(root, "model");
  if (kd_h5_exists(file, "/meta/model_config") &&
      kd_h5_read_string_dataset(file, "/meta/model_config", "", &cfg, &err) == 0) {
    cJSON *spec = cJSON_Parse(cfg);
    cJSON *name = spec ? cJSON_GetObjectItemCaseSensitive(spec, "name") : NULL;
    if (cJSON_IsString(name))
      cJSON_AddStringToObject(model, "name", name->valuestring);
    else
      cJSON_AddNullToObject(model, "name");
    cJSON_Delete(spec);
    free(cfg);
  } else {
    cJSON_AddNullToObject(model, "name");
  }
  cJSON *tensors = cJSON_AddArrayToObject(model, "tensors");
  int64_t params = 0;
  hid_t g = kd_h5_is_group(file, "/model") ? H5Gopen2(file, "/model", H5P_DEFAULT) : -1;
  char **names = NULL;
  if (g >= 0 && kd_h5_list_group(g, "/model", &names, &n, &err) == 0) {
    for (size_t i = 0; i < n; i++) {
      cJSON *d = kd_h5_is_dataset(g, names[i]) ? dataset_json(g, names[i], names[i]) : NULL;
      if (!d) continue;
      /* Named by the state_dict key, as PyTorch would. */
      cJSON_AddItemToObject(d, "name", cJSON_DetachItemFromObject(d, "path"));
      cJSON *shape = cJSON_GetObjectItem(d, "shape");
      int64_t count = 1;
      cJSON *dim;
      cJSON_ArrayForEach(dim, shape) count *= (int64_t)strtoll(dim->valuestring, NULL, 10);
      params += count;
      cJSON_AddItemToArray(tensors, d);
    }
    kd_h5_free_names(names, n);
  }
  if (g >= 0) H5Gclose(g);
  add_i64(model, "parameters", params);

  if (kd_h5_is_group(file, "/optimizer")) {
    g = H5Gopen2(file, "/optimizer", H5P_DEFAULT);
    cJSON *opt = g >= 0 ? attrs_json(g) : cJSON_CreateObject();
    int64_t state = 0;
    hid_t st = g >= 0 && kd_h5_is_group(g, "state") ? H5Gopen2(g, "state", H5P_DEFAULT) : -1;
    if (st >= 0 && kd_h5_list_group(st, "/optimizer/state", &names, &n, &err) == 0) {
      for (size_t i = 0; i < n; i++) {
        hid_t pg = kd_h5_is_group(st, names[i]) ? H5Gopen2(st, names[i], H5P_DEFAULT) : -1;
        H5G_info_t gi;
        if (pg >= 0 && H5Gget_info(pg, &gi) >= 0) state += (int64_t)gi.nlinks;
        if (pg >= 0) H5Gclose(pg);
      }
      kd_h5_free_names(names, n);
    }
    if (st >= 0) H5Gclose(st);
    if (g >= 0) H5Gclose(g);
    add_i64(opt, "state_tensors", state);
    cJSON_AddItemToObject(root, "optimizer", opt);
  } else {
    cJSON_AddNullToObject(root, "optimizer");
  }
  static const char *const pos[3] = {"/train/step", "/train/epoch", "/train/data_cursor"};
  for (int i = 0; i < 3; i++) {
    int ok;
    int64_t v = read_i64_scalar(file, pos[i], &ok);
    if (ok)
      add_i64(root, pos[i] + 7, v);
    else
      cJSON_AddNullToObject(root, pos[i] + 7);
  }
  uint64_t seed = 0;
  hid_t d = kd_h5_is_dataset(file, "/rng/seed") ? H5Dopen2(file, "/rng/seed", H5P_DEFAULT) : -1;
  if (d >= 0 && H5Dread(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &seed) >= 0)
    add_u64(root, "seed", seed);
  else
    cJSON_AddNullToObject(root, "seed");
  if (d >= 0) H5Dclose(d);
  H5Eclear2(H5E_DEFAULT);
}

static void describe_logits(cJSON *root, hid_t file) {
  cJSON *l = kd_h5_is_dataset(file, "/logits") ? dataset_json(file, "/logits", "/logits") : NULL;
  if (l)
    cJSON_AddItemToObject(root, "logits", l);
  else
    cJSON_AddNullToObject(root, "logits");
}

/* ---- Text rendering ---- */

static const char *str_or(const cJSON *o, const char *key, const char *dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : dflt;
}

/* Raw integers and numbers alike, as text. */
static void num_text(const cJSON *v, char *buf, size_t cap) {
  if (cJSON_IsRaw(v))
    snprintf(buf, cap, "%s", v->valuestring);
  else if (cJSON_IsNumber(v))
    snprintf(buf, cap, "%g", v->valuedouble);
  else if (cJSON_IsBool(v))
    snprintf(buf, cap, "%s", cJSON_IsTrue(v) ? "true" : "false");
  else if (cJSON_IsString(v))
    snprintf(buf, cap, "%s", v->valuestring);
  else
    snprintf(buf, cap, "-");
}

static void shape_text(const cJSON *shape, char *buf, size_t cap) {
  size_t used = 0;
  const cJSON *d;
  used += (size_t)snprintf(buf, cap, "[");
  cJSON_ArrayForEach(d, shape) {
    if (used >= cap) break;
    used += (size_t)snprintf(buf + used, cap - used, "%s%s", d == shape->child ? "" : ", ",
                             cJSON_IsRaw(d) ? d->valuestring : "?");
  }
  if (used < cap) snprintf(buf + used, cap - used, "]");
  if (!cJSON_IsArray(shape)) snprintf(buf, cap, "(scalar?)");
}

static void print_attrs(const cJSON *attrs, const char *indent) {
  const cJSON *a;
  cJSON_ArrayForEach(a, attrs) {
    char v[1100];
    num_text(a, v, sizeof v);
    printf("%s@%s = %s\n", indent, a->string, v);
  }
}

static void print_listing(const cJSON *root) {
  const cJSON *o, *objs = cJSON_GetObjectItem(root, "objects");
  cJSON_ArrayForEach(o, objs) {
    const char *type = str_or(o, "type", "?");
    if (!strcmp(type, "dataset")) {
      char s[512];
      shape_text(cJSON_GetObjectItem(o, "shape"), s, sizeof s);
      printf("  %s  %s %s\n", str_or(o, "path", "?"), str_or(o, "dtype", "?"), s);
    } else {
      printf("  %s/  (%s)\n", str_or(o, "path", "?"), type);
    }
    print_attrs(cJSON_GetObjectItem(o, "attrs"), "      ");
  }
}

static void print_text(const cJSON *root) {
  const char *kind = str_or(root, "kind", "hdf5");
  const char *file = str_or(root, "file", "?");
  const cJSON *ver = cJSON_GetObjectItem(root, "format_version");
  char vs[64] = "";
  if (cJSON_IsArray(ver) && cJSON_GetArraySize(ver) >= 2)
    snprintf(vs, sizeof vs, " %d.%d", cJSON_GetArrayItem(ver, 0)->valueint,
             cJSON_GetArrayItem(ver, 1)->valueint);
  char s[512], t[512];
  if (!strcmp(kind, "dataset")) {
    int valid = cJSON_IsTrue(cJSON_GetObjectItem(root, "valid"));
    printf("%s: kdcl dataset%s%s\n", file, vs, valid ? "" : " (NOT USABLE)");
    if (!valid) {
      printf("  error: %s\n", str_or(root, "error", "?"));
      print_listing(root);
      return;
    }
    num_text(cJSON_GetObjectItem(root, "rows"), s, sizeof s);
    printf("  rows      %s\n", s);
    const cJSON *in = cJSON_GetObjectItem(root, "inputs");
    shape_text(cJSON_GetObjectItem(in, "sample_shape"), s, sizeof s);
    printf("  inputs    /inputs/x %s %s per row, layout %s, scale %g, mean %g, std %g\n",
           str_or(in, "dtype", "?"), s, str_or(in, "layout", "-"),
           cJSON_GetObjectItem(in, "scale")->valuedouble,
           cJSON_GetObjectItem(in, "mean")->valuedouble,
           cJSON_GetObjectItem(in, "std")->valuedouble);
    const cJSON *lab = cJSON_GetObjectItem(root, "labels");
    int ok = cJSON_IsTrue(cJSON_GetObjectItem(lab, "in_range"));
    printf("  labels    /labels/y %s, %d classes, %s%s%s\n", str_or(lab, "dtype", "?"),
           cJSON_GetObjectItem(lab, "num_classes")->valueint, ok ? "all in range" : "OUT OF RANGE",
           ok ? "" : ": ", ok ? "" : str_or(lab, "error", ""));
    const cJSON *te = cJSON_GetObjectItem(root, "teacher");
    if (cJSON_IsNull(te) || !te) {
      printf("  teacher   none\n");
    } else {
      int vok = cJSON_IsTrue(cJSON_GetObjectItem(te, "values_ok"));
      const char *tid = str_or(te, "teacher_id", "");
      printf("  teacher   kind %s, teacher_id %s, %d classes, k %d, %s%s%s\n",
             str_or(te, "kind", "?"), tid[0] ? tid : "(none)",
             cJSON_GetObjectItem(te, "num_classes")->valueint,
             cJSON_GetObjectItem(te, "k")->valueint, vok ? "values ok" : "BAD VALUES",
             vok ? "" : ": ", vok ? "" : str_or(te, "error", ""));
      const cJSON *a;
      cJSON_ArrayForEach(a, te) {
        static const char *const shown[] = {"kind",   "teacher_id", "num_classes", "k",
                                            "values_ok", "error",   "datasets"};
        int skip = 0;
        for (size_t i = 0; i < sizeof shown / sizeof *shown; i++) skip |= !strcmp(a->string, shown[i]);
        if (skip) continue;
        num_text(a, s, sizeof s);
        printf("            @%s %s\n", a->string, s);
      }
      cJSON_ArrayForEach(a, cJSON_GetObjectItem(te, "datasets")) {
        shape_text(cJSON_GetObjectItem(a, "shape"), s, sizeof s);
        printf("            %s %s %s\n", str_or(a, "path", "?"), str_or(a, "dtype", "?"), s);
      }
    }
  } else if (!strcmp(kind, "checkpoint")) {
    int complete = cJSON_IsTrue(cJSON_GetObjectItem(root, "complete"));
    int valid = cJSON_IsTrue(cJSON_GetObjectItem(root, "valid"));
    printf("%s: kdcl checkpoint%s, %s%s\n", file, vs,
           complete ? "complete" : "INCOMPLETE (no complete=1: the writer was interrupted)",
           valid ? "" : " (NOT USABLE)");
    if (!valid) printf("  error: %s\n", str_or(root, "error", "?"));
    const cJSON *m = cJSON_GetObjectItem(root, "model");
    num_text(cJSON_GetObjectItem(m, "parameters"), s, sizeof s);
    const cJSON *tensors = cJSON_GetObjectItem(m, "tensors");
    printf("  model     %s: %d tensors, %s parameters\n", str_or(m, "name", "(no model_config)"),
           cJSON_GetArraySize(tensors), s);
    const cJSON *tt;
    cJSON_ArrayForEach(tt, tensors) {
      shape_text(cJSON_GetObjectItem(tt, "shape"), s, sizeof s);
      printf("            %-32s %s %s\n", str_or(tt, "name", "?"), str_or(tt, "dtype", "?"), s);
    }
    const cJSON *opt = cJSON_GetObjectItem(root, "optimizer");
    if (cJSON_IsObject(opt)) {
      printf("  optimizer %s", str_or(opt, "type", "?"));
      const cJSON *a;
      cJSON_ArrayForEach(a, opt) {
        if (!strcmp(a->string, "type")) continue;
        num_text(a, s, sizeof s);
        printf(", %s %s", a->string, s);
      }
      printf("\n");
    } else {
      printf("  optimizer none\n");
    }
    num_text(cJSON_GetObjectItem(root, "step"), s, sizeof s);
    num_text(cJSON_GetObjectItem(root, "epoch"), t, sizeof t);
    char c[64], sd[64];
    num_text(cJSON_GetObjectItem(root, "data_cursor"), c, sizeof c);
    num_text(cJSON_GetObjectItem(root, "seed"), sd, sizeof sd);
    printf("  position  step %s, epoch %s, data_cursor %s, seed %s\n", s, t, c, sd);
  } else if (!strcmp(kind, "logits")) {
    const cJSON *l = cJSON_GetObjectItem(root, "logits");
    shape_text(cJSON_GetObjectItem(l, "shape"), s, sizeof s);
    printf("%s: kdcl logits%s\n  logits    /logits %s %s\n", file, vs, str_or(l, "dtype", "?"), s);
  } else {
    const char *fmt = str_or(root, "format", NULL);
    if (fmt)
      printf("%s: HDF5 file, format \"%s\"%s\n", file, fmt, vs);
    else
      printf("%s: HDF5 file\n", file);
    print_attrs(cJSON_GetObjectItem(root, "attrs"), "  ");
    print_listing(root);
  }
}

int kd_cmd_inspect(int argc, char **argv) {
  static const struct option opts[] = {
      {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  int json = 0, c;
  opterr = 0;
  while ((c = kd_getopt("inspect", argc, argv, opts)) != -1) {
    if (c == KD_FLAG_BAD_VALUE) return KD_EXIT_USAGE;
    if (c == 'j')
      json = 1;
    else if (c == 'h')
      return help(), KD_EXIT_OK;
    else
      return kd_cli_usage_error("inspect", "unknown option '%s'", argv[optind - 1]);
  }
  if (optind >= argc) return kd_cli_usage_error("inspect", "missing FILE.h5");
  if (optind + 1 < argc)
    return kd_cli_usage_error("inspect", "unexpected argument '%s'", argv[optind + 1]);
  const char *path = argv[optind];
  if (!*path) return kd_cli_usage_error("inspect", "FILE.h5 is an empty string");

  kd_error err = {{0}};
  hid_t file;
  if (kd_h5_open_read(path, &file, &err)) return kd_cli_error(&err);

  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "file", path);
  struct stat st;
  if (stat(path, &st) == 0) add_i64(root, "file_bytes", (int64_t)st.st_size);
  char fmt[256] = "";
  if (kd_h5_has_attr(file, "format") &&
      kd_h5_read_attr_string(file, "format", path, fmt, sizeof fmt, &err) == 0)
    cJSON_AddStringToObject(root, "format", fmt);
  else
    cJSON_AddNullToObject(root, "format");
  int32_t ver[4];
  size_t nver = 0;
  if (kd_h5_has_attr(file, "format_version") &&
      kd_h5_read_attr_ints(file, "format_version", path, ver, 4, &nver, &err) == 0) {
    cJSON *a = cJSON_AddArrayToObject(root, "format_version");
    for (size_t i = 0; i < nver; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ver[i]));
  } else {
    cJSON_AddNullToObject(root, "format_version");
  }
  H5Eclear2(H5E_DEFAULT);

  /* Files written by hand with h5py may lack `format`: /inputs/x + /labels/y is a dataset. */
  int readable = nver == 0 || ver[0] == 1;
  const char *kind = "hdf5";
  if (readable &&
      (!strcmp(fmt, "kdcl-dataset") ||
       (!fmt[0] && kd_h5_is_dataset(file, "/inputs/x") && kd_h5_is_dataset(file, "/labels/y"))))
    kind = "dataset";
  else if (readable && !strcmp(fmt, "kdcl-checkpoint"))
    kind = "checkpoint";
  else if (readable && !strcmp(fmt, "kdcl-logits"))
    kind = "logits";
  cJSON_AddStringToObject(root, "kind", kind);
  if (!readable) {
    char note[512];
    snprintf(note, sizeof note, "format_version %d.x is newer than this kdcl reads (1.x)",
             (int)ver[0]);
    cJSON_AddStringToObject(root, "note", note);
  }

  if (!strcmp(kind, "dataset")) {
    describe_dataset(root, file, path);
  } else if (!strcmp(kind, "checkpoint")) {
    describe_checkpoint(root, file, path);
  } else if (!strcmp(kind, "logits")) {
    describe_logits(root, file);
  } else {
    cJSON_AddItemToObject(root, "attrs", attrs_json(file));
    add_listing(root, file);
  }
  H5Fclose(file);

  if (json) {
    char *s = cJSON_PrintUnformatted(root);
    printf("%s\n", s);
    free(s);
  } else {
    print_text(root);
    const char *note = str_or(root, "note", NULL);
    if (note) printf("  note: %s\n", note);
  }
  /* A kdcl file that would be refused exits 1, so scripts can validate files with inspect. */
  const cJSON *valid = cJSON_GetObjectItem(root, "valid");
  int usable = !valid || cJSON_IsTrue(valid);
  cJSON_Delete(root);
  return usable ? KD_EXIT_OK : KD_EXIT_ERROR;
}
