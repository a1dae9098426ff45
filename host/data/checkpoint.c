/* Checkpoint files: atomic write (complete=1 last), validated read, and single-tensor reads
 * for --init from any HDF5 file with a /model group. */
#include "data/checkpoint.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "data/h5util.h"

/* ---- Writing ---- */

static int check_tensor(const char *path, const kd_named_tensor *t, int is_state, kd_error *err) {
  size_t len = strnlen(t->name, sizeof t->name);
  if (len == 0 || len >= sizeof t->name)
    return kd_fail(err, "%s: a tensor has an empty or unterminated name", path);
  const char *slash = strchr(t->name, '/');
  if (is_state) {
    if (!slash || slash == t->name || !slash[1] || strchr(slash + 1, '/'))
      return kd_fail(err, "%s: optimizer state name '%s' is not <param>/<slot>", path, t->name);
  } else if (slash || !strcmp(t->name, ".") || !strcmp(t->name, "..")) {
    return kd_fail(err, "%s: model tensor name '%s' may not contain '/'", path, t->name);
  }
  if (t->ndim < 0 || t->ndim > 4)
    return kd_fail(err, "%s: tensor %s has rank %d (0 to 4 allowed)", path, t->name, t->ndim);
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) {
    if (t->shape[i] < 0 || (t->shape[i] > 0 && n > INT64_MAX / t->shape[i]))
      return kd_fail(err, "%s: tensor %s has a bad shape", path, t->name);
    n *= t->shape[i];
  }
  if (n > 0 && !t->data && !t->idata)
    return kd_fail(err, "%s: tensor %s has no data", path, t->name);
  return 0;
}

int kd_checkpoint_write(const char *path, const kd_checkpoint *ck, kd_error *err) {
  if (ck->num_model < 0 || ck->num_optim_state < 0)
    return kd_fail(err, "%s: negative tensor count", path);
  for (int i = 0; i < ck->num_model; i++)
    if (check_tensor(path, &ck->model[i], 0, err)) return -1;
  for (int i = 0; i < ck->num_optim_state; i++)
    if (check_tensor(path, &ck->optim_state[i], 1, err)) return -1;
  if (strnlen(ck->optimizer_type, sizeof ck->optimizer_type) >= sizeof ck->optimizer_type)
    return kd_fail(err, "%s: optimizer type is not terminated", path);

  kd_h5_writer w;
  if (kd_h5_writer_begin(&w, path, "kdcl-checkpoint", err)) return -1;
  hid_t g = H5I_INVALID_HID;
  if (ck->model_config &&
      kd_h5_write_string_dataset(w.file, "/meta/model_config", ck->model_config, err))
    goto fail;
  if (ck->train_config &&
      kd_h5_write_string_dataset(w.file, "/meta/train_config", ck->train_config, err))
    goto fail;

  if ((g = kd_h5_group_create(w.file, "/model", err)) < 0) goto fail;
  for (int i = 0; i < ck->num_model; i++) {
    const kd_named_tensor *t = &ck->model[i];
    if (t->idata ? kd_h5_write_dataset(g, t->name, H5T_STD_I64LE, H5T_NATIVE_INT64, t->ndim,
                                       t->shape, t->idata, err)
                 : kd_h5_write_dataset(g, t->name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t->ndim,
                                       t->shape, t->data, err))
      goto fail;
  }
  H5Gclose(g);

  if ((g = kd_h5_group_create(w.file, "/optimizer", err)) < 0) goto fail;
  if (kd_h5_write_attr_string(g, "type", ck->optimizer_type, err)) goto fail;
  static const char *const names[7] = {"lr",    "momentum", "dampening", "weight_decay",
                                       "beta1", "beta2",    "eps"};
  const double vals[7] = {ck->lr,    ck->momentum, ck->dampening, ck->weight_decay,
                          ck->beta1, ck->beta2,    ck->eps};
  for (int i = 0; i < 7; i++)
    if (kd_h5_write_attr_double(g, names[i], vals[i], err)) goto fail;
  if (kd_h5_write_attr_int(g, "nesterov", ck->nesterov ? 1 : 0, err)) goto fail;
  H5Gclose(g);
  if ((g = kd_h5_group_create(w.file, "/optimizer/state", err)) < 0) goto fail;
  for (int i = 0; i < ck->num_optim_state; i++) {
    const kd_named_tensor *t = &ck->optim_state[i];
    if (kd_h5_write_dataset(g, t->name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t->ndim, t->shape,
                            t->data, err))
      goto fail;
  }
  H5Gclose(g);
  g = H5I_INVALID_HID;

  if (kd_h5_write_dataset(w.file, "/train/step", H5T_STD_I64LE, H5T_NATIVE_INT64, 0, NULL,
                          &ck->step, err) ||
      kd_h5_write_dataset(w.file, "/train/epoch", H5T_STD_I64LE, H5T_NATIVE_INT64, 0, NULL,
                          &ck->epoch, err) ||
      kd_h5_write_dataset(w.file, "/train/data_cursor", H5T_STD_I64LE, H5T_NATIVE_INT64, 0, NULL,
                          &ck->data_cursor, err) ||
      kd_h5_write_dataset(w.file, "/rng/seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, 0, NULL, &ck->seed,
                          err))
    goto fail;
  /* Last: a reader that finds complete=1 knows everything above was written. */
  if (kd_h5_write_attr_int(w.file, "complete", 1, err)) goto fail;
  return kd_h5_writer_commit(&w, err);
fail:
  kd_fail_context(err, "writing checkpoint %s", path);
  if (g >= 0) H5Gclose(g);
  kd_h5_writer_abort(&w);
  return -1;
}

/* ---- Reading ---- */

void kd_checkpoint_free(kd_checkpoint *ck) {
  free(ck->model_config);
  free(ck->train_config);
  for (int i = 0; i < ck->num_model; i++) {
    free(ck->model[i].data);
    free(ck->model[i].idata);
  }
  for (int i = 0; i < ck->num_optim_state; i++) free(ck->optim_state[i].data);
  free(ck->model);
  free(ck->optim_state);
  memset(ck, 0, sizeof *ck);
}

/* Group member names (see kd_h5_list_group). */
typedef struct name_list {
  char **names;
  size_t n;
} name_list;

static void free_names(name_list *l) {
  kd_h5_free_names(l->names, l->n);
  l->names = NULL;
  l->n = 0;
}

static int list_group(hid_t group, const char *what, name_list *l, kd_error *err) {
  return kd_h5_list_group(group, what, &l->names, &l->n, err);
}

/* Reads dataset loc/name (integer or float, rank <= 4) into t as float32. */
static int read_tensor(hid_t loc, const char *name, const char *path, const char *prefix,
                       kd_named_tensor *t, kd_error *err) {
  char what[4400];
  snprintf(what, sizeof what, "%s: %s/%s", path, prefix, name);
  if (!kd_h5_is_dataset(loc, name)) return kd_fail(err, "%s is not a dataset", what);
  hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
  if (d < 0) return kd_h5_fail(err, "%s", what);
  int rc = -1;
  hid_t type = H5Dget_type(d);
  H5T_class_t cls = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
  if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
    char tn[32] = "unknown";
    if (type >= 0) kd_h5_type_name(type, tn, sizeof tn);
    kd_fail(err, "%s has type %s but a float32 tensor is needed", what, tn);
    goto done;
  }
  int64_t dims[4];
  int nd;
  if (kd_h5_dataset_shape(d, what, 4, &nd, dims, err)) goto done;
  size_t n = 1;
  for (int i = 0; i < nd; i++) {
    if ((uint64_t)dims[i] > SIZE_MAX / sizeof(float) / (n ? n : 1)) {
      kd_fail(err, "%s is too large", what);
      goto done;
    }
    n *= (size_t)dims[i];
    t->shape[i] = dims[i];
  }
  t->ndim = nd;
  t->data = malloc((n ? n : 1) * sizeof(float));
  if (!t->data) {
    kd_fail(err, "%s: out of memory", what);
    goto done;
  }
  if (n && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) < 0) {
    kd_h5_fail(err, "%s: reading", what);
    goto done;
  }
  if (cls == H5T_INTEGER) {
    t->idata = malloc((n ? n : 1) * sizeof(int64_t));
    if (!t->idata) {
      kd_fail(err, "%s: out of memory", what);
      goto done;
    }
    if (n && H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->idata) < 0) {
      kd_h5_fail(err, "%s: reading", what);
      goto done;
    }
  }
  rc = 0;
done:
  if (type >= 0) H5Tclose(type);
  H5Dclose(d);
  return rc;
}

/* Reads the one value of a scalar (or one-element) integer dataset as mtype. */
static int read_scalar(hid_t file, const char *name, const char *path, hid_t mtype, void *out,
                       kd_error *err) {
  if (!kd_h5_is_dataset(file, name)) return kd_fail(err, "%s: missing %s", path, name);
  hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
  if (d < 0) return kd_h5_fail(err, "%s: %s", path, name);
  int rc = -1;
  hid_t type = H5Dget_type(d), space = H5Dget_space(d);
  if (type < 0 || space < 0) {
    kd_h5_fail(err, "%s: %s", path, name);
  } else if (H5Tget_class(type) != H5T_INTEGER) {
    char tn[32];
    kd_h5_type_name(type, tn, sizeof tn);
    kd_fail(err, "%s: %s has type %s but an integer is needed", path, name, tn);
  } else if (H5Sget_simple_extent_npoints(space) != 1) {
    kd_fail(err, "%s: %s holds %lld values but one is needed", path, name,
            (long long)H5Sget_simple_extent_npoints(space));
  } else if (H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
    kd_h5_fail(err, "%s: reading %s", path, name);
  } else {
    rc = 0;
  }
  if (type >= 0) H5Tclose(type);
  if (space >= 0) H5Sclose(space);
  H5Dclose(d);
  return rc;
}

static int append_tensor(kd_named_tensor **arr, int *n, kd_named_tensor **out, kd_error *err) {
  kd_named_tensor *p = realloc(*arr, ((size_t)*n + 1) * sizeof *p);
  if (!p) return kd_fail(err, "out of memory");
  *arr = p;
  memset(&p[*n], 0, sizeof p[*n]);
  *out = &p[(*n)++];
  return 0;
}

static int read_optimizer(hid_t file, const char *path, kd_checkpoint *ck, kd_error *err) {
  if (!kd_h5_is_group(file, "/optimizer")) return 0;
  hid_t g = H5Gopen2(file, "/optimizer", H5P_DEFAULT);
  if (g < 0) return kd_h5_fail(err, "%s: /optimizer", path);
  char what[4200];
  snprintf(what, sizeof what, "%s: /optimizer", path);
  int rc = -1;
  name_list params = {0};
  if (kd_h5_has_attr(g, "type") &&
      kd_h5_read_attr_string(g, "type", what, ck->optimizer_type, sizeof ck->optimizer_type, err))
    goto done;
  static const char *const names[7] = {"lr",    "momentum", "dampening", "weight_decay",
                                       "beta1", "beta2",    "eps"};
  double *vals[7] = {&ck->lr,    &ck->momentum, &ck->dampening, &ck->weight_decay,
                     &ck->beta1, &ck->beta2,    &ck->eps};
  for (int i = 0; i < 7; i++)
    if (kd_h5_has_attr(g, names[i]) && kd_h5_read_attr_double(g, names[i], what, vals[i], err))
      goto done;
  if (kd_h5_has_attr(g, "nesterov")) {
    int32_t v;
    size_t n;
    if (kd_h5_read_attr_ints(g, "nesterov", what, &v, 1, &n, err)) goto done;
    ck->nesterov = v != 0;
  }
  if (!kd_h5_is_group(g, "state")) {
    rc = 0;
    goto done;
  }
  hid_t st = H5Gopen2(g, "state", H5P_DEFAULT);
  if (st < 0) {
    kd_h5_fail(err, "%s/state", what);
    goto done;
  }
  if (list_group(st, "/optimizer/state", &params, err)) {
    H5Gclose(st);
    goto done;
  }
  for (size_t i = 0; i < params.n; i++) {
    char prefix[400];
    snprintf(prefix, sizeof prefix, "/optimizer/state/%s", params.names[i]);
    if (!kd_h5_is_group(st, params.names[i])) {
      kd_fail(err, "%s: %s is not a group of optimizer state tensors", path, prefix);
      H5Gclose(st);
      goto done;
    }
    hid_t pg = H5Gopen2(st, params.names[i], H5P_DEFAULT);
    name_list slots;
    if (pg < 0 || list_group(pg, prefix, &slots, err)) {
      if (pg < 0)
        kd_h5_fail(err, "%s: %s", path, prefix);
      else
        H5Gclose(pg);
      H5Gclose(st);
      goto done;
    }
    int bad = 0;
    for (size_t j = 0; j < slots.n && !bad; j++) {
      kd_named_tensor *t;
      if (strlen(params.names[i]) + 1 + strlen(slots.names[j]) >= sizeof t->name) {
        bad = kd_fail(err, "%s: %s/%s: name too long", path, prefix, slots.names[j]);
        break;
      }
      if (append_tensor(&ck->optim_state, &ck->num_optim_state, &t, err)) {
        bad = -1;
        break;
      }
      snprintf(t->name, sizeof t->name, "%s/%s", params.names[i], slots.names[j]);
      bad = read_tensor(pg, slots.names[j], path, prefix, t, err);
    }
    free_names(&slots);
    H5Gclose(pg);
    if (bad) {
      H5Gclose(st);
      goto done;
    }
  }
  H5Gclose(st);
  rc = 0;
done:
  free_names(&params);
  H5Gclose(g);
  return rc;
}

int kd_checkpoint_read(const char *path, kd_checkpoint *ck, kd_error *err) {
  memset(ck, 0, sizeof *ck);
  hid_t file;
  if (kd_h5_open_read(path, &file, err)) return -1;
  hid_t g = H5I_INVALID_HID;
  name_list names = {0};
  if (kd_h5_check_format(file, path, "kdcl-checkpoint", 1, err)) goto fail;
  int32_t complete = 0;
  size_t n;
  if (!kd_h5_has_attr(file, "complete") ||
      kd_h5_read_attr_ints(file, "complete", path, &complete, 1, &n, err) || complete != 1) {
    kd_fail(err,
            "%s: incomplete checkpoint (no root attribute complete = 1: the writer was "
            "interrupted before it finished)",
            path);
    goto fail;
  }
  char what[4200];
  snprintf(what, sizeof what, "%s: /meta/model_config", path);
  if (kd_h5_exists(file, "/meta/model_config") &&
      kd_h5_read_string_dataset(file, "/meta/model_config", what, &ck->model_config, err))
    goto fail;
  snprintf(what, sizeof what, "%s: /meta/train_config", path);
  if (kd_h5_exists(file, "/meta/train_config") &&
      kd_h5_read_string_dataset(file, "/meta/train_config", what, &ck->train_config, err))
    goto fail;

  if (!kd_h5_is_group(file, "/model")) {
    kd_fail(err, "%s: missing /model (the group of model tensors)", path);
    goto fail;
  }
  if ((g = H5Gopen2(file, "/model", H5P_DEFAULT)) < 0) {
    kd_h5_fail(err, "%s: /model", path);
    goto fail;
  }
  if (list_group(g, "/model", &names, err)) goto fail;
  for (size_t i = 0; i < names.n; i++) {
    kd_named_tensor *t;
    if (strlen(names.names[i]) >= sizeof t->name) {
      kd_fail(err, "%s: /model/%s: name too long (at most %zu bytes)", path, names.names[i],
              sizeof t->name - 1);
      goto fail;
    }
    if (append_tensor(&ck->model, &ck->num_model, &t, err)) goto fail;
    snprintf(t->name, sizeof t->name, "%s", names.names[i]);
    if (read_tensor(g, names.names[i], path, "/model", t, err)) goto fail;
  }
  H5Gclose(g);
  g = H5I_INVALID_HID;
  if (read_optimizer(file, path, ck, err)) goto fail;
  if (read_scalar(file, "/train/step", path, H5T_NATIVE_INT64, &ck->step, err) ||
      read_scalar(file, "/train/epoch", path, H5T_NATIVE_INT64, &ck->epoch, err) ||
      read_scalar(file, "/train/data_cursor", path, H5T_NATIVE_INT64, &ck->data_cursor, err) ||
      read_scalar(file, "/rng/seed", path, H5T_NATIVE_UINT64, &ck->seed, err))
    goto fail;
  free_names(&names);
  H5Fclose(file);
  return 0;
fail:
  free_names(&names);
  if (g >= 0) H5Gclose(g);
  H5Fclose(file);
  kd_checkpoint_free(ck);
  return -1;
}

int kd_h5_read_model_tensor(hid_t file, const char *path_for_messages, const char *name, int ndim,
                            const int64_t *shape, float *out, kd_error *err) {
  const char *path = path_for_messages;
  char full[512], want[256], got[256];
  if (ndim < 0 || ndim > 4)
    return kd_fail(err, "%s: bad rank %d requested for %s", path, ndim, name);
  if (snprintf(full, sizeof full, "/model/%s", name) >= (int)sizeof full)
    return kd_fail(err, "%s: tensor name too long: %s", path, name);
  kd_h5_format_shape(want, sizeof want, ndim, shape);
  if (!kd_h5_is_dataset(file, full))
    return kd_fail(err, "%s: file has no %s (the model needs a float tensor of shape %s)", path,
                   full, want);
  hid_t d = H5Dopen2(file, full, H5P_DEFAULT);
  if (d < 0) return kd_h5_fail(err, "%s: %s", path, full);
  char what[1100];
  snprintf(what, sizeof what, "%s: %s", path, full);
  int rc = -1;
  hid_t type = H5Dget_type(d);
  int64_t dims[32];
  int nd;
  if (type < 0) {
    kd_h5_fail(err, "%s", what);
  } else if (H5Tget_class(type) != H5T_FLOAT) {
    char tn[32];
    kd_h5_type_name(type, tn, sizeof tn);
    kd_fail(err, "%s has type %s but a float tensor is needed", what, tn);
  } else if (kd_h5_dataset_shape(d, what, 32, &nd, dims, err) == 0) {
    int same = nd == ndim;
    for (int i = 0; same && i < nd; i++) same = dims[i] == shape[i];
    kd_h5_format_shape(got, sizeof got, nd, dims);
    if (!same) {
      kd_fail(err, "%s has shape %s but the model needs %s", what, got, want);
    } else {
      int64_t count = 1;
      for (int i = 0; i < nd; i++) count *= dims[i];
      if (count > 0 && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        kd_h5_fail(err, "%s: reading", what);
      else
        rc = 0;
    }
  }
  if (type >= 0) H5Tclose(type);
  H5Dclose(d);
  return rc;
}

int kd_h5_read_model_int64(hid_t file, const char *path_for_messages, const char *name,
                           int64_t *out, int *found, kd_error *err) {
  char full[1024];
  *found = 0;
  if (snprintf(full, sizeof full, "/model/%s", name) >= (int)sizeof full)
    return kd_fail(err, "%s: tensor name too long: %s", path_for_messages, name);
  if (!kd_h5_is_dataset(file, full)) return 0;
  hid_t d = H5Dopen2(file, full, H5P_DEFAULT);
  if (d < 0) return kd_h5_fail(err, "%s: %s", path_for_messages, full);
  int rc = -1;
  hid_t type = H5Dget_type(d), space = H5Dget_space(d);
  if (type < 0 || space < 0) {
    kd_h5_fail(err, "%s: %s", path_for_messages, full);
  } else if (H5Tget_class(type) != H5T_INTEGER || H5Sget_simple_extent_npoints(space) != 1) {
    kd_fail(err, "%s: %s must be one integer", path_for_messages, full);
  } else if (H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
    kd_h5_fail(err, "%s: reading %s", path_for_messages, full);
  } else {
    *found = 1;
    rc = 0;
  }
  if (type >= 0) H5Tclose(type);
  if (space >= 0) H5Sclose(space);
  H5Dclose(d);
  return rc;
}
