/* Teacher outputs: value checks, the crash-safe /teacher writer (byte copy to OUT.tmp, HDF5
 * edits, fsync, rename) and the JSONL top-k importer. */
#include "data/teacher.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/h5util.h"

#define KD_TEACHER_CHUNK_BYTES ((size_t)64 * 1024)

/* ---- Value checks ---- */

int kd_teacher_check_rows(kd_teacher_kind kind, int num_classes, int k, int64_t row0,
                          int64_t nrows, const float *logits, const int32_t *idx,
                          const float *logp, int64_t *stamp, const char *prefix, kd_error *err) {
  if (kind == KD_TEACHER_LOGITS) {
    for (int64_t r = 0; r < nrows; r++) {
      const float *z = logits + (size_t)r * (size_t)num_classes;
      for (int c = 0; c < num_classes; c++) {
        if (isnan(z[c]))
          return kd_fail(err, "%s/teacher/logits row %" PRId64 " has a NaN (class %d)", prefix,
                         row0 + r, c);
        if (isinf(z[c]))
          return kd_fail(err, "%s/teacher/logits row %" PRId64 " has an infinite value, %s (class %d)",
                         prefix, row0 + r, z[c] > 0 ? "+inf" : "-inf", c);
      }
    }
    return 0;
  }
  for (int64_t r = 0; r < nrows; r++) {
    int64_t row = row0 + r;
    const int32_t *ix = idx + (size_t)r * (size_t)k;
    const float *lp = logp + (size_t)r * (size_t)k;
    for (int j = 0; j < k; j++) {
      int32_t c = ix[j];
      if (c < 0 || c >= num_classes)
        return kd_fail(err,
                       "%s/teacher/topk_idx row %" PRId64 " entry %d is class %d, outside [0, %d)",
                       prefix, row, j, (int)c, num_classes);
      if (stamp[c] == row) {
        int first = 0;
        while (first < j && ix[first] != c) first++;
        return kd_fail(err, "%s/teacher/topk_idx row %" PRId64 " has class %d twice (entries %d and %d)",
                       prefix, row, (int)c, first, j);
      }
      stamp[c] = row;
    }
    for (int j = 0; j < k; j++) {
      if (isnan(lp[j]))
        return kd_fail(err, "%s/teacher/topk_logp row %" PRId64 " has a NaN (entry %d)", prefix,
                       row, j);
      if (isinf(lp[j]))
        return kd_fail(err, "%s/teacher/topk_logp row %" PRId64 " has an infinite value, %s (entry %d)",
                       prefix, row, lp[j] > 0 ? "+inf" : "-inf", j);
      if (lp[j] > KD_TEACHER_LOGP_MAX)
        return kd_fail(err,
                       "%s/teacher/topk_logp row %" PRId64 " entry %d is %g, above 1e-4: not a "
                       "log-probability (natural log, <= 0)",
                       prefix, row, j, (double)lp[j]);
      if (j > 0 && lp[j] > lp[j - 1])
        return kd_fail(err,
                       "%s/teacher/topk_logp row %" PRId64 " is not sorted descending (entry %d "
                       "> entry %d)",
                       prefix, row, j, j - 1);
    }
    /* Probabilities normalised over all classes: the top k cannot hold more than all of it. */
    double mass = 0;
    for (int j = 0; j < k; j++) mass += exp((double)lp[j]);
    if (mass > 1.0 + KD_TEACHER_MASS_SLACK)
      return kd_fail(err,
                     "%s/teacher/topk_logp row %" PRId64 " has probabilities summing to %.4f > 1: "
                     "log-probabilities must be normalised over all classes",
                     prefix, row, mass);
  }
  return 0;
}

/* ---- Writer ---- */

static void parent_dir(const char *path, char *dir, size_t cap) {
  snprintf(dir, cap, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash)
    snprintf(dir, cap, ".");
  else if (slash == dir)
    dir[1] = '\0';
  else
    *slash = '\0';
}

/* Byte copy of src into dst (created or truncated, writable by its owner until the caller gives
 * it src's permission bits, *mode). */
static int copy_file(const char *src, const char *dst, const char *out, mode_t *mode,
                     kd_error *err) {
  int in = open(src, O_RDONLY);
  if (in < 0) return kd_fail(err, "%s: cannot open for copying: %s", src, strerror(errno));
  struct stat st;
  if (fstat(in, &st) != 0) {
    int e = errno;
    close(in);
    return kd_fail(err, "%s: %s", src, strerror(e));
  }
  *mode = st.st_mode & 0777;
  int o = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (o < 0) {
    int e = errno;
    close(in);
    char dir[4096];
    parent_dir(out, dir, sizeof dir);
    struct stat ds;
    if (stat(dir, &ds) != 0)
      return kd_fail(err, "%s: cannot create: directory %s does not exist", out, dir);
    return kd_fail(err, "%s: cannot create %s: %s", out, dst, strerror(e));
  }
  (void)fchmod(o, 0600); /* a stale tmp keeps its own mode */
  size_t cap = (size_t)1 << 20;
  char *buf = malloc(cap);
  int rc = 0;
  if (!buf) rc = kd_fail(err, "out of memory copying %s", src);
  while (rc == 0) {
    ssize_t got = read(in, buf, cap);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      rc = kd_fail(err, "%s: read error while copying: %s", src, strerror(errno));
      break;
    }
    if (got == 0) break;
    for (ssize_t off = 0; off < got && rc == 0;) {
      ssize_t put = write(o, buf + off, (size_t)(got - off));
      if (put < 0 && errno == EINTR) continue;
      if (put < 0)
        rc = kd_fail(err, "%s: writing %s: %s", out, dst, strerror(errno));
      else
        off += put;
    }
  }
  free(buf);
  close(in);
  if (close(o) != 0 && rc == 0) rc = kd_fail(err, "%s: writing %s: %s", out, dst, strerror(errno));
  return rc;
}

/* Opens the copy for writing with the project's file access properties (libver V18, strong
 * close degree); files whose superblock is newer than V18 allows (h5py libver='latest') are
 * opened with the library's default bounds instead. */
static hid_t open_rw(const char *path) {
  hid_t fapl = kd_h5_fapl_create();
  hid_t f = fapl >= 0 ? H5Fopen(path, H5F_ACC_RDWR, fapl) : H5I_INVALID_HID;
  if (fapl >= 0) H5Pclose(fapl);
  if (f >= 0) return f;
  H5Eclear2(H5E_DEFAULT);
  fapl = kd_h5_fapl_read_create(); /* library bounds; the file-locking setting kept */
  if (fapl < 0) return fapl;
  H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
  f = H5Fopen(path, H5F_ACC_RDWR, fapl);
  H5Pclose(fapl);
  return f;
}

/* Creates and writes the chunked [n, cols] dataset /teacher/<name>. */
static int write_2d(hid_t g, const char *name, hid_t ftype, hid_t mtype, int64_t n, int cols,
                    const void *data, const char *out, kd_error *err) {
  hsize_t dims[2] = {(hsize_t)n, (hsize_t)cols};
  size_t row_bytes = (size_t)cols * 4;
  hsize_t rpc = (KD_TEACHER_CHUNK_BYTES + row_bytes - 1) / row_bytes;
  if (rpc > (hsize_t)n) rpc = (hsize_t)n;
  hsize_t chunk[2] = {rpc, (hsize_t)cols};
  hid_t space = H5Screate_simple(2, dims, NULL);
  hid_t dcpl = kd_h5_dcpl_create();
  hid_t d = H5I_INVALID_HID;
  int rc = -1;
  if (space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, 2, chunk) < 0 ||
      H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0) {
    kd_h5_fail(err, "%s: setting up /teacher/%s", out, name);
    goto done;
  }
  d = H5Dcreate2(g, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (d < 0) {
    kd_h5_fail(err, "%s: creating /teacher/%s", out, name);
    goto done;
  }
  if (H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    kd_h5_fail(err, "%s: writing /teacher/%s", out, name);
    goto done;
  }
  rc = 0;
done:
  if (d >= 0) H5Dclose(d);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (space >= 0) H5Sclose(space);
  return rc;
}

/* The HDF5 edits on the copy: replace /teacher. */
static int edit_copy(const char *tmp, const char *out, const kd_teacher_data *t, int k,
                     const char *tid, kd_error *err) {
  hid_t f = open_rw(tmp);
  if (f < 0) return kd_h5_fail(err, "%s: opening the copy %s for writing", out, tmp);
  hid_t g = H5I_INVALID_HID;
  int rc = -1;
  if (kd_h5_exists(f, "/teacher") && H5Ldelete(f, "/teacher", H5P_DEFAULT) < 0) {
    kd_h5_fail(err, "%s: removing the old /teacher", out);
    goto done;
  }
  g = kd_h5_group_create(f, "/teacher", err);
  if (g < 0) {
    kd_fail_context(err, "%s", out);
    goto done;
  }
  if (kd_h5_write_attr_string(g, "kind", t->kind == KD_TEACHER_LOGITS ? "logits" : "topk", err) ||
      kd_h5_write_attr_string(g, "teacher_id", tid, err) ||
      kd_h5_write_attr_int(g, "num_classes", t->num_classes, err) ||
      kd_h5_write_attr_int(g, "k", k, err)) {
    kd_fail_context(err, "%s: /teacher", out);
    goto done;
  }
  if (t->kind == KD_TEACHER_LOGITS) {
    if (write_2d(g, "logits", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t->n, t->num_classes, t->logits,
                 out, err))
      goto done;
  } else if (write_2d(g, "topk_idx", H5T_STD_I32LE, H5T_NATIVE_INT32, t->n, k, t->topk_idx, out,
                      err) ||
             write_2d(g, "topk_logp", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t->n, k, t->topk_logp,
                      out, err)) {
    goto done;
  }
  rc = 0;
done:
  if (g >= 0) H5Gclose(g);
  herr_t closed = H5Fclose(f);
  if (rc == 0 && closed < 0) rc = kd_h5_fail(err, "%s: closing %s", out, tmp);
  H5Eclear2(H5E_DEFAULT);
  return rc;
}

int kd_dataset_write_teacher(const char *data_path, const char *out_path, const kd_teacher_data *t,
                             kd_error *err) {
  kd_h5_init();
  const char *out = out_path ? out_path : data_path;
  if (t->kind != KD_TEACHER_LOGITS && t->kind != KD_TEACHER_TOPK)
    return kd_fail(err, "%s: teacher kind must be logits or topk", out);
  if (t->n < 1) return kd_fail(err, "%s: a teacher of %" PRId64 " rows", out, t->n);
  if (t->num_classes < 1) return kd_fail(err, "%s: a teacher of %d classes", out, t->num_classes);
  int k = t->kind == KD_TEACHER_LOGITS ? t->num_classes : t->k;
  if (k < 1 || k > t->num_classes)
    return kd_fail(err, "%s: teacher k = %d but must be in [1, %d] (num_classes)", out, k,
                   t->num_classes);
  if (t->kind == KD_TEACHER_LOGITS ? !t->logits : (!t->topk_idx || !t->topk_logp))
    return kd_fail(err, "%s: no teacher data to write", out);
  const char *tid = t->teacher_id ? t->teacher_id : "";
  if (strlen(tid) >= 256)
    return kd_fail(err, "%s: teacher_id is %zu bytes long, at most 255 are allowed", out,
                   strlen(tid));
  size_t olen = strlen(out);
  if (olen == 0 || olen + 5 > 4096) return kd_fail(err, "bad output path '%s'", out);

  kd_dataset ds;
  if (kd_dataset_open_flags(&ds, data_path, KD_DATASET_SKIP_TEACHER, err)) return -1;
  int64_t rows = ds.num_rows;
  int classes = ds.num_classes;
  kd_dataset_close(&ds);
  if (t->n != rows)
    return kd_fail(err, "%s: the teacher has %" PRId64 " rows but the dataset has %" PRId64,
                   data_path, t->n, rows);
  if (t->num_classes != classes)
    return kd_fail(err, "%s: the teacher has %d classes but /labels/y num_classes is %d",
                   data_path, t->num_classes, classes);
  if ((uint64_t)t->n > SIZE_MAX / 8 / (size_t)k)
    return kd_fail(err, "%s: teacher of %" PRId64 " x %d is too large", out, t->n, k);

  /* The values, as a reader would check them. */
  int64_t *stamp = NULL;
  if (t->kind == KD_TEACHER_TOPK) {
    stamp = malloc((size_t)classes * sizeof *stamp);
    if (!stamp) return kd_fail(err, "out of memory");
    for (int c = 0; c < classes; c++) stamp[c] = -1;
  }
  char prefix[4200];
  snprintf(prefix, sizeof prefix, "%s: refusing to write a teacher whose ", data_path);
  int bad = kd_teacher_check_rows(t->kind, classes, k, 0, t->n, t->logits, t->topk_idx,
                                  t->topk_logp, stamp, prefix, err);
  free(stamp);
  if (bad) return -1;

  struct stat ost;
  if (stat(out, &ost) == 0 && S_ISDIR(ost.st_mode))
    return kd_fail(err, "%s: is a directory, not a file to write the dataset to", out);
  char tmp[4100];
  snprintf(tmp, sizeof tmp, "%s.tmp", out);
  mode_t mode = 0644;
  if (copy_file(data_path, tmp, out, &mode, err)) {
    unlink(tmp);
    return -1;
  }
  if (edit_copy(tmp, out, t, k, tid, err)) {
    unlink(tmp);
    return -1;
  }
  (void)chmod(tmp, mode); /* the dataset's permission bits, now that the edits are done */
  int fd = open(tmp, O_RDONLY);
  if (fd < 0 || fsync(fd) != 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    unlink(tmp);
    return kd_fail(err, "%s: syncing %s: %s", out, tmp, strerror(e));
  }
  close(fd);
  if (rename(tmp, out) != 0) {
    int e = errno;
    unlink(tmp);
    return kd_fail(err, "%s: renaming %s over it: %s", out, tmp, strerror(e));
  }
  /* Make the rename durable; best effort (some file systems refuse fsync on a directory). */
  char dir[4096];
  parent_dir(out, dir, sizeof dir);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
  return 0;
}

/* ---- JSONL import ---- */

typedef struct topk_entry {
  int32_t cls;
  float logp;
} topk_entry;

/* Descending log-probability, ties by ascending class. */
static int cmp_entry(const void *a, const void *b) {
  const topk_entry *p = a, *q = b;
  if (p->logp != q->logp) return p->logp > q->logp ? -1 : 1;
  return (p->cls > q->cls) - (p->cls < q->cls);
}

static int is_blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n' && s[i] != '\f' &&
        s[i] != '\v')
      return 0;
  return 1;
}

/* An integral JSON number in [lo, hi) into *out; 0 if item is not one. */
static int json_int(const cJSON *item, double lo, double hi, int64_t *out) {
  if (!cJSON_IsNumber(item)) return 0;
  double v = item->valuedouble;
  if (!isfinite(v) || v != floor(v)) return 0;
  if (v < lo || v >= hi) return -1;
  *out = (int64_t)v;
  return 1;
}

/* Checks and stores one parsed line. first_line[row] is the line that gave row (0 = none). */
static int import_line(const cJSON *obj, const char *jp, int64_t lineno, int64_t nrows, int C,
                       int *K, int64_t *first_line, int32_t **idx, float **logp,
                       topk_entry **entries, int64_t *stamp, kd_error *err) {
  const char *shape = "{\"row\": i, \"top_logprobs\": [{\"class\": c, \"logprob\": x}, ...]}";
  if (!cJSON_IsObject(obj))
    return kd_fail(err, "%s:%" PRId64 ": not a JSON object (expected %s)", jp, lineno, shape);
  const cJSON *jr = cJSON_GetObjectItemCaseSensitive(obj, "row");
  if (!jr) return kd_fail(err, "%s:%" PRId64 ": no \"row\" (expected %s)", jp, lineno, shape);
  int64_t row;
  int ok = json_int(jr, 0, (double)nrows, &row);
  if (ok == 0)
    return kd_fail(err, "%s:%" PRId64 ": \"row\" must be an integer row number in [0, %" PRId64 ")",
                   jp, lineno, nrows);
  if (ok < 0)
    return kd_fail(err, "%s:%" PRId64 ": row %.17g is out of range: the dataset has %" PRId64
                   " rows, [0, %" PRId64 ")", jp, lineno, jr->valuedouble, nrows, nrows);
  if (first_line && first_line[row])
    return kd_fail(err, "%s:%" PRId64 ": row %" PRId64 " appears twice (first on line %" PRId64 ")",
                   jp, lineno, row, first_line[row]);
  const cJSON *tl = cJSON_GetObjectItemCaseSensitive(obj, "top_logprobs");
  if (!tl) return kd_fail(err, "%s:%" PRId64 ": no \"top_logprobs\" (expected %s)", jp, lineno, shape);
  if (!cJSON_IsArray(tl))
    return kd_fail(err, "%s:%" PRId64 ": \"top_logprobs\" must be an array of {\"class\": c, "
                   "\"logprob\": x}", jp, lineno);
  int cnt = cJSON_GetArraySize(tl);
  if (*K == 0) {
    /* The first line fixes K. */
    if (cnt < 1)
      return kd_fail(err, "%s:%" PRId64 ": top_logprobs is empty (at least one entry is needed)",
                     jp, lineno);
    if (cnt > C)
      return kd_fail(err, "%s:%" PRId64 ": top_logprobs has %d entries but the dataset has only %d "
                     "classes", jp, lineno, cnt, C);
    size_t total = (size_t)nrows * (size_t)cnt;
    *idx = malloc(total * sizeof **idx);
    *logp = malloc(total * sizeof **logp);
    *entries = malloc((size_t)cnt * sizeof **entries);
    if (!*idx || !*logp || !*entries)
      return kd_fail(err, "out of memory for %" PRId64 " rows of %d entries", nrows, cnt);
    *K = cnt;
  } else if (cnt != *K) {
    return kd_fail(err, "%s:%" PRId64 ": top_logprobs has %d entries but the first line has %d; "
                   "every line must have the same number", jp, lineno, cnt, *K);
  }
  topk_entry *e = *entries;
  int j = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, tl) {
    if (!cJSON_IsObject(it))
      return kd_fail(err, "%s:%" PRId64 ": top_logprobs[%d] is not an object {\"class\": c, "
                     "\"logprob\": x}", jp, lineno, j);
    const cJSON *jc = cJSON_GetObjectItemCaseSensitive(it, "class");
    const cJSON *jl = cJSON_GetObjectItemCaseSensitive(it, "logprob");
    if (!jc || !jl)
      return kd_fail(err, "%s:%" PRId64 ": top_logprobs[%d] has no \"%s\"", jp, lineno, j,
                     jc ? "logprob" : "class");
    int64_t c;
    ok = json_int(jc, 0, C, &c);
    if (ok == 0)
      return kd_fail(err, "%s:%" PRId64 ": top_logprobs[%d] \"class\" must be an integer class "
                     "index in [0, %d)", jp, lineno, j, C);
    if (ok < 0)
      return kd_fail(err, "%s:%" PRId64 ": top_logprobs[%d] class %.17g is outside [0, %d)", jp,
                     lineno, j, jc->valuedouble, C);
    if (stamp[c] == lineno) {
      int first = 0;
      while (first < j && e[first].cls != c) first++;
      return kd_fail(err, "%s:%" PRId64 ": class %d appears twice in top_logprobs ([%d] and [%d])",
                     jp, lineno, (int)c, first, j);
    }
    stamp[c] = lineno;
    if (!cJSON_IsNumber(jl))
      return kd_fail(err, "%s:%" PRId64 ": top_logprobs[%d] \"logprob\" must be a number", jp,
                     lineno, j);
    double lp = jl->valuedouble;
    if (!isfinite(lp) || !isfinite((float)lp))
      return kd_fail(err, "%s:%" PRId64 ": top_logprobs[%d] logprob is not a finite float32 number",
                     jp, lineno, j);
    if (lp > KD_TEACHER_LOGP_MAX)
      return kd_fail(err, "%s:%" PRId64 ": top_logprobs[%d] logprob %g is above 1e-4: not a "
                     "log-probability (natural log, <= 0)", jp, lineno, j, lp);
    e[j].cls = (int32_t)c;
    e[j].logp = (float)lp;
    j++;
  }
  double mass = 0; /* normalised over all classes: the top k cannot hold more than all of it */
  for (int i = 0; i < *K; i++) mass += exp((double)e[i].logp);
  if (mass > 1.0 + KD_TEACHER_MASS_SLACK)
    return kd_fail(err, "%s:%" PRId64 ": the top_logprobs probabilities sum to %.4f > 1: "
                   "log-probabilities must be normalised over all classes", jp, lineno, mass);
  qsort(e, (size_t)*K, sizeof *e, cmp_entry);
  int32_t *ri = *idx + (size_t)row * (size_t)*K;
  float *rl = *logp + (size_t)row * (size_t)*K;
  for (int i = 0; i < *K; i++) ri[i] = e[i].cls, rl[i] = e[i].logp;
  first_line[row] = lineno;
  return 0;
}

int kd_import_teacher_topk_jsonl(const char *jsonl_path, const char *data_path,
                                 const char *out_path, const char *teacher_id, kd_error *err) {
  kd_dataset ds;
  if (kd_dataset_open_flags(&ds, data_path, KD_DATASET_SKIP_TEACHER, err)) return -1;
  int64_t nrows = ds.num_rows;
  int C = ds.num_classes;
  kd_dataset_close(&ds);

  const char *jp = jsonl_path;
  struct stat st;
  if (stat(jp, &st) != 0) {
    if (errno == ENOENT) return kd_fail(err, "%s: no such file", jp);
    return kd_fail(err, "%s: %s", jp, strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) /* a FIFO would block the reader */
    return kd_fail(err, "%s: is %s, not a JSONL file", jp,
                   S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
  FILE *f = fopen(jp, "r");
  if (!f) return kd_fail(err, "%s: %s", jp, strerror(errno));

  int64_t *first_line = calloc((size_t)nrows, sizeof *first_line);
  int64_t *stamp = malloc((size_t)C * sizeof *stamp);
  int32_t *idx = NULL;
  float *logp = NULL;
  topk_entry *entries = NULL;
  char *line = NULL;
  size_t cap = 0;
  int K = 0, rc = -1;
  int64_t lineno = 0, seen = 0;
  if (!first_line || !stamp) {
    kd_fail(err, "out of memory for %" PRId64 " rows", nrows);
    goto done;
  }
  for (int c = 0; c < C; c++) stamp[c] = -1;
  for (;;) {
    errno = 0;
    ssize_t len = getline(&line, &cap, f);
    if (len < 0) {
      if (ferror(f)) {
        kd_fail(err, "%s: read error after line %" PRId64 ": %s", jp, lineno, strerror(errno));
        goto done;
      }
      break;
    }
    lineno++;
    const char *s = line;
    size_t n = (size_t)len;
    if (lineno == 1 && n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) s += 3, n -= 3; /* UTF-8 BOM */
    if (is_blank(s, n)) continue;
    if (memchr(s, '\0', n)) {
      kd_fail(err, "%s:%" PRId64 ": contains a NUL byte (not a JSON text line)", jp, lineno);
      goto done;
    }
    const char *end = NULL;
    cJSON *obj = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    if (!obj || (end && !is_blank(end, n - (size_t)(end - s)))) {
      cJSON_Delete(obj);
      int nan = strstr(s, "NaN") || strstr(s, "Infinity");
      kd_fail(err, "%s:%" PRId64 ": not valid JSON%s", jp, lineno,
              nan ? " (NaN and Infinity are not JSON numbers)"
              : obj ? " (text after the object; one object per line)"
                    : "");
      goto done;
    }
    int bad = import_line(obj, jp, lineno, nrows, C, &K, first_line, &idx, &logp, &entries, stamp,
                          err);
    cJSON_Delete(obj);
    if (bad) goto done;
    seen++;
  }
  if (lineno == 0 || K == 0) {
    kd_fail(err, "%s: no lines (one JSON object per dataset row is needed, %" PRId64 " rows)", jp,
            nrows);
    goto done;
  }
  if (seen != nrows) {
    char list[256];
    size_t used = 0;
    int shown = 0;
    int64_t missing = nrows - seen;
    for (int64_t r = 0; r < nrows && shown < 5; r++) {
      if (first_line[r]) continue;
      int w = snprintf(list + used, sizeof list - used, "%s%" PRId64, shown ? ", " : "", r);
      if (w > 0 && (size_t)w < sizeof list - used) used += (size_t)w;
      shown++;
    }
    kd_fail(err, "%s: %s %s%s missing (%" PRId64 " of %" PRId64 " rows %s no line)", jp,
            missing == 1 ? "row" : "rows", list, missing > shown ? ", ..." : "", missing, nrows,
            missing == 1 ? "has" : "have");
    goto done;
  }
  fclose(f);
  f = NULL;
  kd_teacher_data t = {.kind = KD_TEACHER_TOPK,
                       .n = nrows,
                       .num_classes = C,
                       .k = K,
                       .topk_idx = idx,
                       .topk_logp = logp,
                       .teacher_id = teacher_id ? teacher_id : "api"};
  rc = kd_dataset_write_teacher(data_path, out_path, &t, err);
done:
  if (f) fclose(f);
  free(line);
  free(first_line);
  free(stamp);
  free(idx);
  free(logp);
  free(entries);
  return rc;
}
