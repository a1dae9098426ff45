/* Dataset files: validation on open, batched reads of arbitrary rows (sorted, merged into runs,
 * read without per-element work), label range checks, and the atomic writer. */
#include "data/dataset.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/h5util.h"
#include "data/teacher.h"

#define KD_CHUNK_TARGET_BYTES ((size_t)64 * 1024)
#define KD_LABEL_BLOCK ((size_t)65536)

/* ---- Chunk cache and label conversion ---- */

/* Opens dataset name with a chunk cache for batch reads: large enough to hold the whole
 * dataset when it is at most 64 MiB (so later epochs of a small dataset never decompress
 * again), never less than four chunks (up to 512 MiB), and a fixed size however large the
 * file is; hash slots ~100x the chunks that fit (at most 200000), rounded to a prime. */
static hid_t open_with_cache(hid_t file, const char *name) {
  hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
  if (d < 0) return d;
  hid_t dcpl = H5Dget_create_plist(d);
  hid_t type = H5Dget_type(d);
  hid_t space = H5Dget_space(d);
  size_t chunk_bytes = 0, total_bytes = 0;
  /* A damaged file can report a type size or a chunk dimension of 0: no cache then. */
  if (dcpl >= 0 && type >= 0 && space >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED &&
      H5Tget_size(type) > 0) {
    hsize_t cd[32];
    int nd = H5Pget_chunk(dcpl, 32, cd);
    hssize_t np = H5Sget_simple_extent_npoints(space);
    chunk_bytes = total_bytes = H5Tget_size(type);
    for (int i = 0; i < nd && chunk_bytes > 0; i++)
      chunk_bytes = cd[i] > SIZE_MAX / chunk_bytes ? SIZE_MAX : chunk_bytes * (size_t)cd[i];
    total_bytes =
        np < 0 || (uint64_t)np > SIZE_MAX / total_bytes ? SIZE_MAX : total_bytes * (size_t)np;
  }
  if (space >= 0) H5Sclose(space);
  if (type >= 0) H5Tclose(type);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (chunk_bytes == 0) return d; /* contiguous: no chunk cache involved */
  H5Dclose(d);
  const size_t max_whole = (size_t)64 << 20, max_chunks = (size_t)512 << 20;
  size_t nbytes = total_bytes < max_whole ? total_bytes : max_whole;
  size_t four = chunk_bytes > max_chunks / 4 ? max_chunks : 4 * chunk_bytes;
  if (nbytes < four) nbytes = four;
  if (nbytes < ((size_t)1 << 20)) nbytes = (size_t)1 << 20;
  hid_t dapl = kd_h5_dapl_chunk_cache(nbytes, chunk_bytes);
  d = H5Dopen2(file, name, dapl >= 0 ? dapl : H5P_DEFAULT);
  if (dapl >= 0) H5Pclose(dapl);
  return d;
}

/* The identity of the file at path: inode, size and modification time (ns). */
static int file_identity(const char *path, uint64_t *ino, int64_t *size, int64_t *mtime_ns) {
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  *ino = (uint64_t)st.st_ino;
  *size = (int64_t)st.st_size;
  *mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
  return 0;
}

int kd_dataset_check_unchanged(const kd_dataset *ds, kd_error *err) {
  uint64_t ino;
  int64_t size, mtime_ns;
  if (file_identity(ds->path, &ino, &size, &mtime_ns))
    return kd_fail(err, "%s is gone while it is being read (%s)", ds->path, strerror(errno));
  if (ino != ds->file_ino || size != ds->file_size || mtime_ns != ds->file_mtime_ns)
    return kd_fail(err, "%s changed while it was being read (size %lld -> %lld bytes%s); a "
                   "dataset must stay as it is while kdcl reads it", ds->path,
                   (long long)ds->file_size, (long long)size,
                   ino != ds->file_ino ? ", replaced by another file" : "");
  return 0;
}

/* A filter this libhdf5 cannot run (h5py's LZF, a plugin not installed) would fail at the first
 * read with a message about plugin directories: say which filter, and how to do without it. */
static int check_filters(hid_t d, const char *what, kd_error *err) {
  hid_t dcpl = H5Dget_create_plist(d);
  if (dcpl < 0) return kd_h5_fail(err, "%s: creation properties", what);
  int n = H5Pget_nfilters(dcpl), rc = 0;
  for (int i = 0; rc == 0 && i < n; i++) {
    unsigned flags = 0, config = 0;
    size_t nvalues = 0;
    char name[64] = "";
    H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nvalues, NULL, sizeof name,
                                     name, &config);
    if (id >= 0 && H5Zfilter_avail(id) <= 0)
      rc = kd_fail(err, "%s is stored with HDF5 filter %d (%s), which this libhdf5 cannot "
                   "decode: rewrite it without that filter with the tool that wrote it (h5py: "
                   "compression=\"gzip\" or none)", what, (int)id, name[0] ? name : "unnamed");
  }
  H5Pclose(dcpl);
  return rc;
}

/* Rows declared but never written (an interrupted writer, or a file that claims 2^40 rows)
 * would read back as fill values: refuse them rather than train on zeros for ever. A chunked
 * dataset must have every chunk stored (H5Dget_space_status calls a compressed one "partly
 * allocated" even when complete), a contiguous one its storage allocated. */
static int check_written(hid_t d, const char *what, const char *shape, kd_error *err) {
  if (check_filters(d, what, err)) return -1;
  hid_t dcpl = H5Dget_create_plist(d), space = H5Dget_space(d);
  int rc = 0, complete = 1;
  if (dcpl < 0 || space < 0) {
    rc = kd_h5_fail(err, "%s: storage layout", what);
  } else if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
    hsize_t dims[32], chunk[32], stored = 0;
    int nd = H5Sget_simple_extent_dims(space, dims, NULL);
    uint64_t expected = 1;
    if (nd < 0 || H5Pget_chunk(dcpl, 32, chunk) != nd || H5Dget_num_chunks(d, space, &stored) < 0)
      rc = kd_h5_fail(err, "%s: chunk index", what);
    for (int i = 0; rc == 0 && i < nd; i++) {
      if (chunk[i] == 0) rc = kd_fail(err, "%s: chunk dimension %d is 0", what, i);
      else expected *= (dims[i] + chunk[i] - 1) / chunk[i]; /* at most 2^64 rows in all */
    }
    complete = stored == expected;
  } else if (H5Pget_layout(dcpl) == H5D_CONTIGUOUS) {
    H5D_space_status_t status;
    if (H5Dget_space_status(d, &status) < 0) rc = kd_h5_fail(err, "%s: storage status", what);
    complete = status == H5D_SPACE_STATUS_ALLOCATED;
  }
  if (dcpl >= 0) H5Pclose(dcpl);
  if (space >= 0) H5Sclose(space);
  if (rc == 0 && !complete)
    rc = kd_fail(err, "%s has shape %s but not all of its data was ever written (an interrupted "
                 "writer?)", what, shape);
  return rc;
}

typedef struct conv_state {
  int overflow;
} conv_state;

static H5T_conv_ret_t label_conv_cb(H5T_conv_except_t kind, hid_t src, hid_t dst, void *src_buf,
                                    void *dst_buf, void *data) {
  (void)src, (void)dst, (void)src_buf, (void)dst_buf;
  if (kind == H5T_CONV_EXCEPT_RANGE_HI || kind == H5T_CONV_EXCEPT_RANGE_LOW) {
    ((conv_state *)data)->overflow = 1;
    return H5T_CONV_ABORT;
  }
  return H5T_CONV_UNHANDLED;
}

/* A transfer list that makes a label read fail (instead of clipping) on values outside int32. */
static hid_t label_dxpl(conv_state *cs) {
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  if (dxpl >= 0 && H5Pset_type_conv_cb(dxpl, label_conv_cb, cs) < 0) {
    H5Pclose(dxpl);
    return H5I_INVALID_HID;
  }
  return dxpl;
}

/* ---- Open ---- */

void kd_dataset_close(kd_dataset *ds) {
  if (ds->x >= 0) H5Dclose(ds->x);
  if (ds->y >= 0) H5Dclose(ds->y);
  if (ds->t_logits >= 0) H5Dclose(ds->t_logits);
  if (ds->t_idx >= 0) H5Dclose(ds->t_idx);
  if (ds->t_logp >= 0) H5Dclose(ds->t_logp);
  if (ds->file >= 0) H5Fclose(ds->file);
  ds->x = ds->y = ds->file = H5I_INVALID_HID;
  ds->t_logits = ds->t_idx = ds->t_logp = H5I_INVALID_HID;
}

/* Opens /teacher/<name> (a dataset of type class `cls`, shape [N, cols]) into *out. `cols_what`
 * says what the second dimension is, for the message ("10 classes", "k = 5"). */
static int open_teacher_dset(kd_dataset *ds, const char *name, H5T_class_t cls, int64_t cols,
                             const char *cols_what, hid_t *out, kd_error *err) {
  char full[64], what[4200], tn[32], shape[256];
  snprintf(full, sizeof full, "/teacher/%s", name);
  snprintf(what, sizeof what, "%s: %s", ds->path, full);
  const char *need = cls == H5T_FLOAT ? "float32" : "int32";
  if (!kd_h5_is_dataset(ds->file, full))
    return kd_fail(err, "%s: missing %s (%s [N, %s] for a %s teacher)", ds->path, full, need,
                   cls == H5T_FLOAT && !strcmp(name, "logits") ? "C" : "K",
                   ds->teacher_kind == KD_TEACHER_LOGITS ? "logits" : "topk");
  *out = open_with_cache(ds->file, full);
  if (*out < 0) return kd_h5_fail(err, "%s: opening %s", ds->path, full);
  hid_t t = H5Dget_type(*out);
  if (t < 0) return kd_h5_fail(err, "%s: type", what);
  H5T_class_t c = H5Tget_class(t);
  kd_h5_type_name(t, tn, sizeof tn);
  H5Tclose(t);
  if (c != cls) return kd_fail(err, "%s has type %s but %s is needed", what, tn, need);
  int64_t dims[32];
  int nd;
  if (kd_h5_dataset_shape(*out, what, 32, &nd, dims, err)) return -1;
  kd_h5_format_shape(shape, sizeof shape, nd, dims);
  if (nd != 2)
    return kd_fail(err, "%s has shape %s but [N, %s] = [%" PRId64 ", %" PRId64 "] is needed",
                   what, shape, cls == H5T_FLOAT && !strcmp(name, "logits") ? "C" : "K",
                   ds->num_rows, cols);
  if (dims[0] != ds->num_rows)
    return kd_fail(err, "%s has %" PRId64 " rows but /inputs/x has %" PRId64, what, dims[0],
                   ds->num_rows);
  if (dims[1] != cols)
    return kd_fail(err, "%s has shape %s but the teacher has %s", what, shape, cols_what);
  return check_filters(*out, what, err);
}

/* Validates and opens /teacher (called once the inputs and labels are known). */
static int open_teacher(kd_dataset *ds, kd_error *err) {
  const char *path = ds->path;
  if (!kd_h5_exists(ds->file, "/teacher")) return 0;
  if (!kd_h5_is_group(ds->file, "/teacher"))
    return kd_fail(err, "%s: /teacher is not a group (the teacher outputs: a group with attrs "
                        "kind, num_classes, k, teacher_id)", path);
  char what[4200];
  snprintf(what, sizeof what, "%s: /teacher", path);
  hid_t g = H5Gopen2(ds->file, "/teacher", H5P_DEFAULT);
  if (g < 0) return kd_h5_fail(err, "%s: opening /teacher", path);
  int rc = -1;
  char kind[64];
  int32_t v;
  size_t nv;
  if (!kd_h5_has_attr(g, "kind")) {
    kd_fail(err, "%s has no attribute kind (\"logits\" or \"topk\")", what);
    goto done;
  }
  if (kd_h5_read_attr_string(g, "kind", what, kind, sizeof kind, err)) goto done;
  if (!strcmp(kind, "logits"))
    ds->teacher_kind = KD_TEACHER_LOGITS;
  else if (!strcmp(kind, "topk"))
    ds->teacher_kind = KD_TEACHER_TOPK;
  else {
    kd_fail(err, "%s attribute kind is \"%s\" but \"logits\" or \"topk\" is needed", what, kind);
    goto done;
  }
  if (!kd_h5_has_attr(g, "num_classes")) {
    kd_fail(err, "%s has no attribute num_classes (the teacher's class count, %d here)", what,
            ds->num_classes);
    goto done;
  }
  if (kd_h5_read_attr_ints(g, "num_classes", what, &v, 1, &nv, err)) goto done;
  if (v != ds->num_classes) {
    kd_fail(err, "%s num_classes %d differs from /labels/y num_classes %d", what, (int)v,
            ds->num_classes);
    goto done;
  }
  ds->teacher_classes = v;
  ds->teacher_k = v;
  if (ds->teacher_kind == KD_TEACHER_TOPK) {
    if (!kd_h5_has_attr(g, "k")) {
      kd_fail(err, "%s has no attribute k (entries per row of a topk teacher, 1 to %d)", what,
              ds->num_classes);
      goto done;
    }
    if (kd_h5_read_attr_ints(g, "k", what, &v, 1, &nv, err)) goto done;
    if (v < 1 || v > ds->num_classes) {
      kd_fail(err, "%s attribute k is %d but must be in [1, %d] (num_classes)", what, (int)v,
              ds->num_classes);
      goto done;
    }
    ds->teacher_k = v;
  }
  if (kd_h5_has_attr(g, "teacher_id") &&
      kd_h5_read_attr_string(g, "teacher_id", what, ds->teacher_id, sizeof ds->teacher_id, err))
    goto done;
  char cw[64];
  if (ds->teacher_kind == KD_TEACHER_LOGITS) {
    snprintf(cw, sizeof cw, "%d classes", ds->teacher_classes);
    if (open_teacher_dset(ds, "logits", H5T_FLOAT, ds->teacher_classes, cw, &ds->t_logits, err))
      goto done;
  } else {
    snprintf(cw, sizeof cw, "k = %d", ds->teacher_k);
    if (open_teacher_dset(ds, "topk_idx", H5T_INTEGER, ds->teacher_k, cw, &ds->t_idx, err) ||
        open_teacher_dset(ds, "topk_logp", H5T_FLOAT, ds->teacher_k, cw, &ds->t_logp, err))
      goto done;
  }
  ds->has_teacher = 1;
  rc = 0;
done:
  H5Gclose(g);
  return rc;
}

int kd_dataset_open(kd_dataset *ds, const char *path, kd_error *err) {
  return kd_dataset_open_flags(ds, path, 0, err);
}

int kd_dataset_open_flags(kd_dataset *ds, const char *path, unsigned flags, kd_error *err) {
  memset(ds, 0, sizeof *ds);
  ds->file = ds->x = ds->y = H5I_INVALID_HID;
  ds->t_logits = ds->t_idx = ds->t_logp = H5I_INVALID_HID;
  kd_h5_init();
  size_t plen = strlen(path);
  if (plen >= sizeof ds->path) return kd_fail(err, "dataset path too long: %.200s...", path);
  memcpy(ds->path, path, plen + 1);
  if (kd_h5_open_read(path, &ds->file, err)) return -1;
  if (file_identity(path, &ds->file_ino, &ds->file_size, &ds->file_mtime_ns)) {
    kd_fail(err, "%s: cannot stat it (%s)", path, strerror(errno));
    goto fail;
  }
  if (kd_h5_check_format(ds->file, path, "kdcl-dataset", 0, err)) goto fail;

  char what[4200], tn[32], shape[256];
  int64_t dims[32];
  int nd;

  /* /inputs/x */
  if (!kd_h5_is_dataset(ds->file, "/inputs/x")) {
    kd_fail(err, "%s: missing /inputs/x (the input samples, uint8 or float32 [N, ...])", path);
    goto fail;
  }
  ds->x = open_with_cache(ds->file, "/inputs/x");
  if (ds->x < 0) {
    kd_h5_fail(err, "%s: opening /inputs/x", path);
    goto fail;
  }
  snprintf(what, sizeof what, "%s: /inputs/x", path);
  hid_t xt = H5Dget_type(ds->x);
  if (xt < 0) {
    kd_h5_fail(err, "%s: type", what);
    goto fail;
  }
  H5T_class_t xc = H5Tget_class(xt);
  int u8 = xc == H5T_INTEGER && H5Tget_size(xt) == 1 && H5Tget_sign(xt) == H5T_SGN_NONE;
  kd_h5_type_name(xt, tn, sizeof tn);
  H5Tclose(xt);
  if (!u8 && xc != H5T_FLOAT) {
    kd_fail(err, "%s has type %s but uint8 or float32 is needed", what, tn);
    goto fail;
  }
  ds->x_is_u8 = u8;
  if (kd_h5_dataset_shape(ds->x, what, 32, &nd, dims, err)) goto fail;
  kd_h5_format_shape(shape, sizeof shape, nd, dims);
  if (nd < 2 || nd > 4) {
    kd_fail(err, "%s has shape %s but [N, ...] with 2 to 4 dimensions is needed", what, shape);
    goto fail;
  }
  ds->num_rows = dims[0];
  ds->sample_ndim = nd - 1;
  size_t elem = u8 ? 1 : sizeof(float), ss = 1;
  for (int i = 1; i < nd; i++) {
    if (dims[i] < 1) {
      kd_fail(err, "%s has shape %s: every sample dimension must be at least 1", what, shape);
      goto fail;
    }
    if ((uint64_t)dims[i] > SIZE_MAX / elem / ss) {
      kd_fail(err, "%s has shape %s: one sample is too large", what, shape);
      goto fail;
    }
    ss *= (size_t)dims[i];
    ds->sample_shape[i - 1] = dims[i];
  }
  ds->sample_size = ss;
  if (ds->num_rows == 0) {
    kd_fail(err, "%s has 0 rows (shape %s): the dataset is empty", what, shape);
    goto fail;
  }
  if (check_written(ds->x, what, shape, err)) goto fail;
  if (kd_h5_has_attr(ds->x, "layout")) { /* rows are read as CHW (or flat, reshaped so) */
    char layout[16];
    if (kd_h5_read_attr_string(ds->x, "layout", what, layout, sizeof layout, err)) goto fail;
    if (strcmp(layout, "CHW") && strcmp(layout, "flat")) {
      kd_fail(err, "%s has layout '%s' but kdcl reads rows as CHW or flat (transpose HWC "
              "images to CHW first)", what, layout);
      goto fail;
    }
  }
  ds->scale = 1.0f, ds->mean = 0.0f, ds->std = 1.0f;
  static const char *const xattr[3] = {"scale", "mean", "std"};
  float *xval[3] = {&ds->scale, &ds->mean, &ds->std};
  for (int i = 0; i < 3; i++) {
    if (!kd_h5_has_attr(ds->x, xattr[i])) continue;
    double v;
    if (kd_h5_read_attr_double(ds->x, xattr[i], what, &v, err)) goto fail;
    if (!isfinite(v) || fabs(v) > 3.0e38 || (i == 2 && v == 0.0)) {
      kd_fail(err, "%s attribute %s is %g but a finite%s number is needed", what, xattr[i], v,
              i == 2 ? ", nonzero" : "");
      goto fail;
    }
    *xval[i] = (float)v;
  }

  /* /labels/y */
  if (!kd_h5_is_dataset(ds->file, "/labels/y")) {
    kd_fail(err, "%s: missing /labels/y (integer class labels [N], attribute num_classes)", path);
    goto fail;
  }
  ds->y = open_with_cache(ds->file, "/labels/y");
  if (ds->y < 0) {
    kd_h5_fail(err, "%s: opening /labels/y", path);
    goto fail;
  }
  snprintf(what, sizeof what, "%s: /labels/y", path);
  hid_t yt = H5Dget_type(ds->y);
  if (yt < 0) {
    kd_h5_fail(err, "%s: type", what);
    goto fail;
  }
  H5T_class_t yc = H5Tget_class(yt);
  kd_h5_type_name(yt, tn, sizeof tn);
  H5Tclose(yt);
  if (yc != H5T_INTEGER) {
    kd_fail(err, "%s has type %s but labels must be integers (int32)", what, tn);
    goto fail;
  }
  if (kd_h5_dataset_shape(ds->y, what, 32, &nd, dims, err)) goto fail;
  kd_h5_format_shape(shape, sizeof shape, nd, dims);
  if (nd != 1) {
    kd_fail(err, "%s has shape %s but one label per row, [N], is needed", what, shape);
    goto fail;
  }
  if (dims[0] != ds->num_rows) {
    kd_fail(err, "%s has %" PRId64 " rows but /inputs/x has %" PRId64, what, dims[0], ds->num_rows);
    goto fail;
  }
  if (check_written(ds->y, what, shape, err)) goto fail;
  if (!kd_h5_has_attr(ds->y, "num_classes")) {
    kd_fail(err, "%s has no attribute num_classes (the number of classes, an integer >= 1)", what);
    goto fail;
  }
  int32_t nc;
  size_t nn;
  if (kd_h5_read_attr_ints(ds->y, "num_classes", what, &nc, 1, &nn, err)) goto fail;
  if (nc < 1) {
    kd_fail(err, "%s attribute num_classes is %d but must be at least 1", what, (int)nc);
    goto fail;
  }
  ds->num_classes = nc;
  if (!(flags & KD_DATASET_SKIP_TEACHER) && open_teacher(ds, err)) goto fail;
  return 0;
fail:
  kd_dataset_close(ds);
  ds->teacher_kind = KD_TEACHER_NONE;
  ds->has_teacher = 0;
  return -1;
}

/* ---- Labels ---- */

int kd_dataset_check_labels(kd_dataset *ds, kd_error *err) {
  int32_t *buf = malloc(KD_LABEL_BLOCK * sizeof *buf);
  conv_state cs = {0};
  hid_t dxpl = label_dxpl(&cs);
  hid_t fspace = H5Dget_space(ds->y);
  int rc = -1;
  if (!buf || dxpl < 0 || fspace < 0) {
    if (!buf)
      kd_fail(err, "out of memory");
    else
      kd_h5_fail(err, "%s: /labels/y", ds->path);
    goto done;
  }
  for (int64_t start = 0; start < ds->num_rows; start += (int64_t)KD_LABEL_BLOCK) {
    int64_t left = ds->num_rows - start;
    hsize_t cnt = left < (int64_t)KD_LABEL_BLOCK ? (hsize_t)left : KD_LABEL_BLOCK;
    hsize_t st = (hsize_t)start;
    hid_t mspace = H5Screate_simple(1, &cnt, NULL);
    herr_t r = mspace < 0 ? -1 : H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &st, NULL, &cnt, NULL);
    if (r >= 0) r = H5Dread(ds->y, H5T_NATIVE_INT32, mspace, fspace, dxpl, buf);
    if (r < 0) {
      if (cs.overflow)
        kd_fail(err,
                "%s: /labels/y has a value outside the int32 range in rows [%" PRId64 ", %" PRId64
                ")",
                ds->path, start, start + (int64_t)cnt);
      else
        kd_h5_fail(err, "%s: reading /labels/y rows [%" PRId64 ", %" PRId64 ")", ds->path, start,
                   start + (int64_t)cnt);
      if (mspace >= 0) H5Sclose(mspace);
      goto done;
    }
    H5Sclose(mspace);
    for (hsize_t i = 0; i < cnt; i++) {
      if (buf[i] < 0 || buf[i] >= ds->num_classes) {
        kd_fail(err,
                "%s: /labels/y row %" PRId64 " has label %d, outside [0, %d) (num_classes = %d)",
                ds->path, start + (int64_t)i, (int)buf[i], ds->num_classes, ds->num_classes);
        goto done;
      }
    }
  }
  rc = 0;
done:
  if (fspace >= 0) H5Sclose(fspace);
  if (dxpl >= 0) H5Pclose(dxpl);
  free(buf);
  return rc;
}

/* ---- Batched reads ---- */

typedef struct row_pos {
  int64_t row;
  size_t pos;
} row_pos;

static int cmp_row_pos(const void *a, const void *b) {
  const row_pos *p = a, *q = b;
  if (p->row != q->row) return p->row < q->row ? -1 : 1;
  return p->pos < q->pos ? -1 : p->pos > q->pos;
}

/* Length of the run of consecutive rows starting at uniq[i] (uniq sorted and unique). */
static size_t run_length(const int64_t *uniq, size_t nu, size_t i) {
  size_t j = i + 1;
  while (j < nu && uniq[j] == uniq[j - 1] + 1) j++;
  return j - i;
}

/* Selects the union of the runs of the sorted unique rows uniq[0..nu) (whole rows) in the
 * dataspace of dset and returns it. Adding runs one by one with H5S_SELECT_OR is quadratic in
 * libhdf5 1.10 (each OR walks the span list: 4096 runs took 110 ms, 16384 runs 1.4 s), so
 * groups of 32 runs are OR'ed into their own dataspaces, which are then merged pairwise with
 * H5Smodify_select: O(runs log runs), 7 ms for 16384 runs. */
static hid_t select_rows(hid_t dset, const int64_t *uniq, size_t nu) {
  enum { GROUP = 32 };
  hid_t proto = H5Dget_space(dset);
  if (proto < 0) return proto;
  int nd = H5Sget_simple_extent_ndims(proto);
  hsize_t dims[32], start[32] = {0}, count[32];
  if (nd < 1 || nd > 32 || H5Sget_simple_extent_dims(proto, dims, NULL) < 0) {
    H5Sclose(proto);
    return H5I_INVALID_HID;
  }
  for (int i = 1; i < nd; i++) count[i] = dims[i];
  size_t nruns = 0;
  for (size_t i = 0; i < nu; i += run_length(uniq, nu, i)) nruns++;
  size_t nparts = (nruns + GROUP - 1) / GROUP;
  hid_t *parts = malloc((nparts ? nparts : 1) * sizeof *parts);
  if (!parts) {
    H5Sclose(proto);
    return H5I_INVALID_HID;
  }
  size_t np = 0, in_group = 0;
  int ok = 1;
  for (size_t i = 0; i < nu && ok;) {
    size_t len = run_length(uniq, nu, i);
    if (in_group == 0) {
      parts[np] = H5Scopy(proto);
      if (parts[np] < 0) {
        ok = 0;
        break;
      }
      np++;
    }
    start[0] = (hsize_t)uniq[i];
    count[0] = (hsize_t)len;
    ok = H5Sselect_hyperslab(parts[np - 1], in_group ? H5S_SELECT_OR : H5S_SELECT_SET, start, NULL,
                             count, NULL) >= 0;
    in_group = (in_group + 1) % GROUP;
    i += len;
  }
  while (ok && np > 1) {
    size_t k = 0;
    for (size_t i = 0; i < np; i += 2) {
      if (i + 1 < np) {
        ok = ok && H5Smodify_select(parts[i], H5S_SELECT_OR, parts[i + 1]) >= 0;
        H5Sclose(parts[i + 1]);
      }
      parts[k++] = parts[i];
    }
    np = k;
  }
  hid_t result = H5I_INVALID_HID;
  if (ok && np == 1)
    result = parts[0];
  else
    for (size_t i = 0; i < np; i++) H5Sclose(parts[i]);
  free(parts);
  H5Sclose(proto);
  return result;
}

/* Reads the sorted unique rows uniq[0..nu) of dataset dset (named `name` in messages; rank
 * nd <= 4, row shape row_shape[0..nd-1)) as mtype into buf (nu rows, file order), one H5Dread
 * per run of consecutive rows. One read over the union of all runs would be a single call, but
 * for a chunked dataset libhdf5 1.10.8 maps an irregular selection onto chunks one element at a
 * time (~40 ns per element): 256 random 784-byte rows took 8-11 ms as one union read and 0.4 ms
 * as 255 regular reads, and the gap grows with the batch. dxpl may carry a conversion callback
 * (cs->overflow then reports an int32 overflow). */
static int read_runs(kd_dataset *ds, hid_t dset, const char *name, hid_t mtype, hid_t dxpl,
                     const conv_state *cs, int nd, const hsize_t *row_shape, const int64_t *uniq,
                     size_t nu, unsigned char *buf, size_t row_bytes, kd_error *err) {
  hid_t fspace = H5Dget_space(dset);
  if (fspace < 0) return kd_h5_fail(err, "%s: %s", ds->path, name);
  hsize_t start[4] = {0}, count[4];
  for (int i = 1; i < nd; i++) count[i] = row_shape[i - 1];
  int rc = 0;
  for (size_t i = 0; i < nu && rc == 0;) {
    size_t len = run_length(uniq, nu, i);
    start[0] = (hsize_t)uniq[i];
    count[0] = (hsize_t)len;
    /* The memory space has the file's row shape: a flat memory space of the same size sends
     * libhdf5 down its element-by-element path (250x slower). */
    hid_t mspace = H5Screate_simple(nd, count, NULL);
    if (mspace < 0 || H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        H5Dread(dset, mtype, mspace, fspace, dxpl, buf + i * row_bytes) < 0) {
      if (cs && cs->overflow)
        rc = kd_fail(err, "%s: %s has a value outside the int32 range in rows [%" PRId64
                          ", %" PRId64 ")", ds->path, name, uniq[i], uniq[i] + (int64_t)len);
      else
        rc = kd_h5_fail(err, "%s: reading %s rows [%" PRId64 ", %" PRId64 ")", ds->path, name,
                        uniq[i], uniq[i] + (int64_t)len);
    }
    if (mspace >= 0) H5Sclose(mspace);
    i += len;
  }
  H5Sclose(fspace);
  return rc;
}

static int read_x_runs(kd_dataset *ds, const int64_t *uniq, size_t nu, unsigned char *buf,
                       size_t row_bytes, kd_error *err) {
  hsize_t shape[3];
  for (int i = 0; i < ds->sample_ndim; i++) shape[i] = (hsize_t)ds->sample_shape[i];
  return read_runs(ds, ds->x, "/inputs/x", ds->x_is_u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT,
                   H5P_DEFAULT, NULL, ds->sample_ndim + 1, shape, uniq, nu, buf, row_bytes, err);
}

int kd_dataset_read_rows(kd_dataset *ds, const int64_t *rows, size_t n, void *x_out, int32_t *y_out,
                         kd_error *err) {
  if (n == 0) return 0;
  if (ds->x < 0 || ds->y < 0) return kd_fail(err, "%s: dataset is not open", ds->path);
  int sorted = 1;
  for (size_t i = 0; i < n; i++) {
    if (rows[i] < 0 || rows[i] >= ds->num_rows)
      return kd_fail(err, "%s: row %" PRId64 " requested but /inputs/x has %" PRId64 " rows",
                     ds->path, rows[i], ds->num_rows);
    if (i && rows[i] <= rows[i - 1]) sorted = 0;
  }
  size_t elem = ds->x_is_u8 ? 1 : sizeof(float);
  size_t row_bytes = ds->sample_size * elem;
  if (n > SIZE_MAX / row_bytes)
    return kd_fail(err, "%s: batch of %zu rows is too large", ds->path, n);

  /* Strictly increasing rows (sequential passes) are read straight into the outputs;
   * otherwise the unique rows are read in file order and scattered afterwards. */
  row_pos *order = NULL;
  size_t *slot = NULL;
  int64_t *uniq = NULL;
  unsigned char *xbuf = x_out;
  int32_t *ybuf = y_out;
  size_t nu = n;
  hid_t fy = H5I_INVALID_HID, my = H5I_INVALID_HID, dxpl = H5I_INVALID_HID;
  conv_state cs = {0};
  int rc = -1;
  if (sorted) {
    uniq = (int64_t *)rows;
  } else {
    order = malloc(n * sizeof *order);
    slot = malloc(n * sizeof *slot);
    uniq = malloc(n * sizeof *uniq);
    if (!order || !slot || !uniq) {
      kd_fail(err, "out of memory for a batch of %zu rows", n);
      goto done;
    }
    for (size_t i = 0; i < n; i++) order[i].row = rows[i], order[i].pos = i;
    qsort(order, n, sizeof *order, cmp_row_pos);
    nu = 0;
    for (size_t i = 0; i < n; i++) {
      if (i == 0 || order[i].row != order[i - 1].row) uniq[nu++] = order[i].row;
      slot[order[i].pos] = nu - 1;
    }
    xbuf = malloc(nu * row_bytes);
    ybuf = y_out ? malloc(nu * sizeof *ybuf) : NULL;
    if (!xbuf || (y_out && !ybuf)) {
      kd_fail(err, "out of memory for a batch of %zu rows", n);
      goto done;
    }
  }

  if (read_x_runs(ds, uniq, nu, xbuf, row_bytes, err)) goto done;
  if (y_out) {
    /* Labels are one element per row, so the per-element cost of a union read is small:
     * one selection, one H5Dread. */
    hsize_t ycount = (hsize_t)nu;
    fy = select_rows(ds->y, uniq, nu);
    my = H5Screate_simple(1, &ycount, NULL);
    dxpl = label_dxpl(&cs);
    if (fy < 0 || my < 0 || dxpl < 0) {
      kd_h5_fail(err, "%s: selecting %zu rows of /labels/y", ds->path, nu);
      goto done;
    }
    if (H5Dread(ds->y, H5T_NATIVE_INT32, my, fy, dxpl, ybuf) < 0) {
      if (cs.overflow)
        kd_fail(err, "%s: /labels/y has a value outside the int32 range", ds->path);
      else
        kd_h5_fail(err, "%s: reading %zu rows of /labels/y", ds->path, nu);
      goto done;
    }
  }
  if (!sorted) {
    unsigned char *xo = x_out;
    for (size_t i = 0; i < n; i++) {
      memcpy(xo + i * row_bytes, xbuf + slot[i] * row_bytes, row_bytes);
      if (y_out) y_out[i] = ybuf[slot[i]];
    }
  }
  rc = kd_dataset_check_unchanged(ds, err);
done:
  if (dxpl >= 0) H5Pclose(dxpl);
  if (my >= 0) H5Sclose(my);
  if (fy >= 0) H5Sclose(fy);
  if (!sorted) {
    free(order);
    free(slot);
    free(uniq);
    free(xbuf);
    free(ybuf);
  }
  return rc;
}

/* ---- Teacher ---- */

#define KD_TEACHER_BLOCK_BYTES ((size_t)4 << 20)

/* Reads rows [start, start+cnt) of the 2-D dataset d ([N, cols]) as mtype into buf. */
static int read_block(kd_dataset *ds, hid_t d, const char *name, hid_t mtype, hid_t dxpl,
                      const conv_state *cs, int64_t start, hsize_t cnt, hsize_t cols, void *buf,
                      kd_error *err) {
  hid_t fspace = H5Dget_space(d);
  hsize_t st[2] = {(hsize_t)start, 0}, count[2] = {cnt, cols};
  hid_t mspace = H5Screate_simple(2, count, NULL);
  herr_t r = fspace < 0 || mspace < 0
                 ? -1
                 : H5Sselect_hyperslab(fspace, H5S_SELECT_SET, st, NULL, count, NULL);
  if (r >= 0) r = H5Dread(d, mtype, mspace, fspace, dxpl, buf);
  if (mspace >= 0) H5Sclose(mspace);
  if (fspace >= 0) H5Sclose(fspace);
  if (r >= 0) return 0;
  if (cs && cs->overflow)
    return kd_fail(err,
                   "%s: %s has a value outside the int32 range in rows [%" PRId64 ", %" PRId64 ")",
                   ds->path, name, start, start + (int64_t)cnt);
  return kd_h5_fail(err, "%s: reading %s rows [%" PRId64 ", %" PRId64 ")", ds->path, name, start,
                    start + (int64_t)cnt);
}

static int no_teacher(const kd_dataset *ds, kd_error *err) {
  if (ds->file < 0) return kd_fail(err, "%s: dataset is not open", ds->path);
  return kd_fail(err, "%s: has no /teacher (teacher outputs; add them with kdcl label or kdcl "
                      "import teacher-topk)", ds->path);
}

int kd_dataset_check_teacher(kd_dataset *ds, kd_error *err) {
  if (ds->teacher_kind == KD_TEACHER_NONE || ds->file < 0) return no_teacher(ds, err);
  int topk = ds->teacher_kind == KD_TEACHER_TOPK;
  size_t cols = (size_t)(topk ? ds->teacher_k : ds->teacher_classes);
  size_t row_bytes = cols * (topk ? sizeof(int32_t) + sizeof(float) : sizeof(float));
  size_t block = KD_TEACHER_BLOCK_BYTES / row_bytes;
  if (block < 1) block = 1;
  if ((int64_t)block > ds->num_rows) block = (size_t)ds->num_rows;
  float *fbuf = malloc(block * cols * sizeof *fbuf);
  int32_t *ibuf = topk ? malloc(block * cols * sizeof *ibuf) : NULL;
  int64_t *stamp = topk ? malloc((size_t)ds->teacher_classes * sizeof *stamp) : NULL;
  conv_state cs = {0};
  hid_t dxpl = topk ? label_dxpl(&cs) : H5P_DEFAULT;
  char prefix[4200];
  snprintf(prefix, sizeof prefix, "%s: ", ds->path);
  int rc = -1;
  if (!fbuf || (topk && (!ibuf || !stamp))) {
    kd_fail(err, "out of memory checking %s: /teacher", ds->path);
    goto done;
  }
  if (dxpl < 0) {
    kd_h5_fail(err, "%s: /teacher", ds->path);
    goto done;
  }
  if (topk)
    for (int c = 0; c < ds->teacher_classes; c++) stamp[c] = -1;
  for (int64_t start = 0; start < ds->num_rows; start += (int64_t)block) {
    int64_t left = ds->num_rows - start;
    hsize_t cnt = left < (int64_t)block ? (hsize_t)left : (hsize_t)block;
    if (topk) {
      if (read_block(ds, ds->t_idx, "/teacher/topk_idx", H5T_NATIVE_INT32, dxpl, &cs, start, cnt,
                     cols, ibuf, err) ||
          read_block(ds, ds->t_logp, "/teacher/topk_logp", H5T_NATIVE_FLOAT, H5P_DEFAULT, NULL,
                     start, cnt, cols, fbuf, err))
        goto done;
    } else if (read_block(ds, ds->t_logits, "/teacher/logits", H5T_NATIVE_FLOAT, H5P_DEFAULT,
                          NULL, start, cnt, cols, fbuf, err)) {
      goto done;
    }
    if (kd_teacher_check_rows(ds->teacher_kind, ds->teacher_classes, ds->teacher_k, start,
                              (int64_t)cnt, topk ? NULL : fbuf, ibuf, topk ? fbuf : NULL, stamp,
                              prefix, err))
      goto done;
  }
  rc = 0;
done:
  if (topk && dxpl >= 0) H5Pclose(dxpl);
  free(fbuf);
  free(ibuf);
  free(stamp);
  return rc;
}

/* One teacher dataset to read in kd_dataset_read_teacher_rows. */
typedef struct teacher_part {
  hid_t dset;
  const char *name;
  hid_t mtype;
  unsigned char *out, *buf;
} teacher_part;

int kd_dataset_read_teacher_rows(kd_dataset *ds, const int64_t *rows, size_t n, float *logits_out,
                                 int32_t *idx_out, float *logp_out, kd_error *err) {
  if (ds->teacher_kind == KD_TEACHER_NONE || ds->file < 0) return no_teacher(ds, err);
  if (n == 0) return 0;
  int sorted = 1;
  for (size_t i = 0; i < n; i++) {
    if (rows[i] < 0 || rows[i] >= ds->num_rows)
      return kd_fail(err, "%s: teacher row %" PRId64 " requested but /teacher has %" PRId64 " rows",
                     ds->path, rows[i], ds->num_rows);
    if (i && rows[i] <= rows[i - 1]) sorted = 0;
  }
  teacher_part parts[2];
  int np = 0;
  hsize_t cols;
  if (ds->teacher_kind == KD_TEACHER_LOGITS) {
    cols = (hsize_t)ds->teacher_classes;
    if (logits_out)
      parts[np++] = (teacher_part){ds->t_logits, "/teacher/logits", H5T_NATIVE_FLOAT,
                                   (unsigned char *)logits_out, NULL};
  } else {
    cols = (hsize_t)ds->teacher_k;
    if (idx_out)
      parts[np++] = (teacher_part){ds->t_idx, "/teacher/topk_idx", H5T_NATIVE_INT32,
                                   (unsigned char *)idx_out, NULL};
    if (logp_out)
      parts[np++] = (teacher_part){ds->t_logp, "/teacher/topk_logp", H5T_NATIVE_FLOAT,
                                   (unsigned char *)logp_out, NULL};
  }
  if (np == 0) return 0;
  /* int32 and float rows have the same size. */
  size_t row_bytes = (size_t)cols * sizeof(float);
  if (n > SIZE_MAX / row_bytes)
    return kd_fail(err, "%s: batch of %zu teacher rows is too large", ds->path, n);

  /* As kd_dataset_read_rows: strictly increasing rows go straight into the outputs; otherwise
   * the unique rows are read in file order and scattered. */
  row_pos *order = NULL;
  size_t *slot = NULL;
  int64_t *uniq = (int64_t *)rows;
  size_t nu = n;
  conv_state cs = {0};
  hid_t dxpl = label_dxpl(&cs);
  int rc = -1;
  if (dxpl < 0) {
    kd_h5_fail(err, "%s: /teacher", ds->path);
    goto done;
  }
  if (!sorted) {
    order = malloc(n * sizeof *order);
    slot = malloc(n * sizeof *slot);
    uniq = malloc(n * sizeof *uniq);
    if (!order || !slot || !uniq) {
      kd_fail(err, "out of memory for a batch of %zu teacher rows", n);
      goto done;
    }
    for (size_t i = 0; i < n; i++) order[i].row = rows[i], order[i].pos = i;
    qsort(order, n, sizeof *order, cmp_row_pos);
    nu = 0;
    for (size_t i = 0; i < n; i++) {
      if (i == 0 || order[i].row != order[i - 1].row) uniq[nu++] = order[i].row;
      slot[order[i].pos] = nu - 1;
    }
  }
  for (int p = 0; p < np; p++) {
    unsigned char *dst = parts[p].out;
    if (!sorted) {
      dst = parts[p].buf = malloc(nu * row_bytes);
      if (!dst) {
        kd_fail(err, "out of memory for a batch of %zu teacher rows", n);
        goto done;
      }
    }
    if (read_runs(ds, parts[p].dset, parts[p].name, parts[p].mtype,
                  parts[p].mtype == H5T_NATIVE_INT32 ? dxpl : H5P_DEFAULT, &cs, 2, &cols, uniq,
                  nu, dst, row_bytes, err))
      goto done;
    if (!sorted)
      for (size_t i = 0; i < n; i++)
        memcpy(parts[p].out + i * row_bytes, dst + slot[i] * row_bytes, row_bytes);
  }
  rc = kd_dataset_check_unchanged(ds, err);
done:
  if (dxpl >= 0) H5Pclose(dxpl);
  for (int p = 0; p < np; p++) free(parts[p].buf);
  if (!sorted) {
    free(order);
    free(slot);
    free(uniq);
  }
  return rc;
}

int kd_dataset_read_all(kd_dataset *ds, void *x_out, int32_t *y_out, float *logits_out,
                        int32_t *idx_out, float *logp_out, kd_error *err) {
  size_t row_bytes = ds->sample_size * (ds->x_is_u8 ? 1 : sizeof(float));
  size_t tc = (size_t)(ds->teacher_kind == KD_TEACHER_TOPK ? ds->teacher_k : ds->teacher_classes);
  int teacher = logits_out || idx_out || logp_out;
  enum { BLOCK = 4096 };
  int64_t rows[BLOCK];
  size_t N = (size_t)ds->num_rows;
  for (size_t start = 0; start < N; start += BLOCK) {
    size_t n = N - start < BLOCK ? N - start : BLOCK;
    for (size_t i = 0; i < n; i++) rows[i] = (int64_t)(start + i);
    if (kd_dataset_read_rows(ds, rows, n, (unsigned char *)x_out + start * row_bytes,
                             y_out + start, err) ||
        (teacher && kd_dataset_read_teacher_rows(ds, rows, n,
                                                 logits_out ? logits_out + start * tc : NULL,
                                                 idx_out ? idx_out + start * tc : NULL,
                                                 logp_out ? logp_out + start * tc : NULL, err)))
      return -1;
  }
  return 0;
}

/* ---- Writing ---- */

/* Creates a chunked dataset (chunks of `chunk_rows` whole rows) and writes data when rows > 0. */
static hid_t write_chunked(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int ndim,
                           const hsize_t *dims, hsize_t chunk_rows, int compress, const void *data,
                           const char *path, kd_error *err) {
  hsize_t chunk[4];
  for (int i = 0; i < ndim; i++) chunk[i] = i == 0 ? chunk_rows : dims[i];
  hid_t space = H5Screate_simple(ndim, dims, NULL);
  hid_t dcpl = kd_h5_dcpl_create();
  hid_t d = H5I_INVALID_HID;
  if (space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, ndim, chunk) < 0 ||
      (compress && (H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, 4) < 0))) {
    kd_h5_fail(err, "%s: setting up %s", path, name);
    goto done;
  }
  d = H5Dcreate2(loc, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (d < 0) {
    kd_h5_fail(err, "%s: creating %s", path, name);
    goto done;
  }
  if (dims[0] > 0 && H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    kd_h5_fail(err, "%s: writing %s", path, name);
    H5Dclose(d);
    d = H5I_INVALID_HID;
  }
done:
  if (dcpl >= 0) H5Pclose(dcpl);
  if (space >= 0) H5Sclose(space);
  return d;
}

int kd_dataset_write(const char *path, const void *x, int x_is_u8, int64_t num_rows,
                     int sample_ndim, const int64_t *sample_shape, const int32_t *y,
                     int num_classes, float scale, float mean, float std, kd_error *err) {
  if (sample_ndim < 1 || sample_ndim > 3)
    return kd_fail(err, "%s: sample rank %d, expected 1 to 3", path, sample_ndim);
  if (num_rows < 0) return kd_fail(err, "%s: negative row count", path);
  if (num_classes < 1) return kd_fail(err, "%s: num_classes %d, expected >= 1", path, num_classes);
  if (num_rows > 0 && (!x || !y)) return kd_fail(err, "%s: no data to write", path);
  size_t row_bytes = x_is_u8 ? 1 : sizeof(float);
  hsize_t dims[4] = {(hsize_t)num_rows};
  for (int i = 0; i < sample_ndim; i++) {
    if (sample_shape[i] < 1 || (uint64_t)sample_shape[i] > SIZE_MAX / row_bytes)
      return kd_fail(err, "%s: bad sample shape", path);
    row_bytes *= (size_t)sample_shape[i];
    dims[i + 1] = (hsize_t)sample_shape[i];
  }
  if (num_rows > 0 && (uint64_t)num_rows > SIZE_MAX / row_bytes)
    return kd_fail(err, "%s: %" PRId64 " rows are too many for memory", path, num_rows);

  /* Chunks of at least 64 KiB (under 128 KiB unless one row is larger): small enough that a
   * random row costs little to decompress, large enough to compress and index well. */
  hsize_t rows_per_chunk = (KD_CHUNK_TARGET_BYTES + row_bytes - 1) / row_bytes;
  if (num_rows > 0 && rows_per_chunk > (hsize_t)num_rows) rows_per_chunk = (hsize_t)num_rows;
  hsize_t y_chunk = num_rows <= 0 ? 1 : num_rows < 65536 ? (hsize_t)num_rows : 65536;

  kd_h5_writer w;
  if (kd_h5_writer_begin(&w, path, "kdcl-dataset", err)) return -1;
  hid_t gi = kd_h5_group_create(w.file, "inputs", err);
  hid_t gl = gi < 0 ? H5I_INVALID_HID : kd_h5_group_create(w.file, "labels", err);
  hid_t dx = H5I_INVALID_HID, dy = H5I_INVALID_HID;
  if (gl < 0) goto fail_ctx;
  dx = write_chunked(gi, "x", x_is_u8 ? H5T_STD_U8LE : H5T_IEEE_F32LE,
                     x_is_u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, sample_ndim + 1, dims,
                     rows_per_chunk, x_is_u8, x, path, err);
  if (dx < 0) goto fail;
  if (kd_h5_write_attr_string(dx, "layout", sample_ndim == 3 ? "CHW" : "flat", err) ||
      kd_h5_write_attr_float(dx, "scale", scale, err) ||
      kd_h5_write_attr_float(dx, "mean", mean, err) || kd_h5_write_attr_float(dx, "std", std, err))
    goto fail_ctx;
  dy = write_chunked(gl, "y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, dims, y_chunk, 0, y, path, err);
  if (dy < 0) goto fail;
  if (kd_h5_write_attr_int(dy, "num_classes", num_classes, err)) goto fail_ctx;
  H5Dclose(dx);
  H5Dclose(dy);
  H5Gclose(gi);
  H5Gclose(gl);
  return kd_h5_writer_commit(&w, err);
fail_ctx:
  kd_fail_context(err, "%s", path);
fail:
  /* The writer's strong close degree closes any object still open. */
  kd_h5_writer_abort(&w);
  return -1;
}

int kd_dataset_check_inputs(kd_dataset *ds, kd_error *err) {
  if (ds->x_is_u8) return 0; /* bytes are always finite, and so is their normalisation */
  const int64_t block = 1024;
  float *x = malloc((size_t)block * ds->sample_size * sizeof *x);
  int64_t *rows = malloc((size_t)block * sizeof *rows);
  int rc = 0;
  if (!x || !rows) rc = kd_fail(err, "out of host memory checking %s", ds->path);
  for (int64_t first = 0; rc == 0 && first < ds->num_rows; first += block) {
    size_t n = (size_t)(ds->num_rows - first < block ? ds->num_rows - first : block);
    for (size_t i = 0; i < n; i++) rows[i] = first + (int64_t)i;
    if ((rc = kd_dataset_read_rows(ds, rows, n, x, NULL, err)) != 0) break;
    for (size_t i = 0; i < n * ds->sample_size; i++) {
      float v = (x[i] * ds->scale - ds->mean) / ds->std;
      if (!isfinite(v)) {
        rc = kd_fail(err, "%s: /inputs/x row %lld has a %s value (%g)%s", ds->path,
                     (long long)(first + (int64_t)(i / ds->sample_size)),
                     isfinite(x[i]) ? "non-finite normalised" : "non-finite", (double)x[i],
                     isfinite(x[i]) ? " after scale, mean and std" : "");
        break;
      }
    }
  }
  free(x);
  free(rows);
  return rc;
}
