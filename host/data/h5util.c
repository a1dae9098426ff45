/* HDF5 helpers: error-stack mapping, object and attribute access, string datasets, and the
 * NAME.tmp -> fsync -> rename protocol that keeps a crash from leaving a half-written file. */
#include "data/h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#ifdef __GLIBC__
#include <malloc.h> /* mallopt(M_PERTURB) */
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/env.h"

void kd_h5_init(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* ---- File locking ---- */

/* A process-wide setting, like the HDF5_USE_FILE_LOCKING variable it mirrors: the command
 * line sets it once (--no-file-locking) before any file is opened. */
static int file_locking = 1;

void kd_h5_set_file_locking(int enabled) { file_locking = enabled != 0; }

int kd_h5_file_locking(void) {
  const char *env = getenv("HDF5_USE_FILE_LOCKING");
  if (env && (!strcmp(env, "FALSE") || !strcmp(env, "0"))) return 0;
  return file_locking;
}

/* Applies the setting to a file access list; HDF5 locks by default, so only "off" is set. */
static int apply_file_locking(hid_t fapl) {
  if (kd_h5_file_locking()) return 0;
  return H5Pset_file_locking(fapl, 0, 1) < 0 ? -1 : 0;
}

hid_t kd_h5_fapl_read_create(void) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0) return fapl;
  if (apply_file_locking(fapl) < 0) {
    H5Pclose(fapl);
    return H5I_INVALID_HID;
  }
  return fapl;
}

/* The lock file's inode must still be the one at lock_path once locked: a process that
 * finished unlinks the file while holding the lock, and a lock on an unlinked inode guards
 * nothing. */
static int same_inode(int fd, const char *path) {
  struct stat a, b;
  return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int kd_output_lock(const char *flag, const char *path, kd_output_lock_t *lock, kd_error *err) {
  lock->fd = -1;
  lock->path[0] = '\0';
  if (!kd_h5_file_locking()) return 0;
  if (snprintf(lock->path, sizeof lock->path, "%s.lock", path) >= (int)sizeof lock->path)
    return kd_fail(err, "%s %s: path too long", flag, path);
  for (int attempt = 0; attempt < 100; attempt++) {
    int fd = open(lock->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      int e = errno;
      lock->path[0] = '\0';
      return kd_fail(err, "%s %s: cannot create files there (%s.lock: %s)", flag, path, path,
                     strerror(e));
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      char pid[32] = "";
      ssize_t got = pread(fd, pid, sizeof pid - 1, 0);
      close(fd);
      lock->path[0] = '\0';
      if (e == EWOULDBLOCK) {
        pid[got > 0 ? got : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        return kd_fail(err,
                       "%s %s: another process%s%s%s is writing it (%s.lock is locked); two "
                       "runs must not write one file",
                       flag, path, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "", path);
      }
      return kd_fail(err,
                     "%s %s: cannot lock %s.lock: %s (on NFS and other file systems without "
                     "locks use --no-file-locking or HDF5_USE_FILE_LOCKING=FALSE)",
                     flag, path, path, strerror(e));
    }
    if (!same_inode(fd, lock->path)) { /* unlinked by its last holder meanwhile: try again */
      close(fd);
      continue;
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
      /* The pid is only for the message of a refused second process. */
    }
    lock->fd = fd;
    return 0;
  }
  lock->path[0] = '\0';
  return kd_fail(err, "%s %s: cannot lock %s.lock: it keeps being replaced", flag, path, path);
}

void kd_output_unlock(kd_output_lock_t *lock) {
  if (lock->fd < 0) return;
  unlink(lock->path); /* while still holding the lock: see same_inode */
  close(lock->fd);
  lock->fd = -1;
  lock->path[0] = '\0';
}

/* ---- Error stack ---- */

typedef struct stack_walk {
  char inner[256], outer[256];
  int not_hdf5, truncated, locked, newer, bad_super;
} stack_walk;

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
  stack_walk *w = data;
  const char *d = e->desc ? e->desc : "";
  if (n == 0) snprintf(w->inner, sizeof w->inner, "%s", d);
  snprintf(w->outer, sizeof w->outer, "%s", d);
  if (strstr(d, "file signature not found")) w->not_hdf5 = 1;
  if (strstr(d, "truncated file")) w->truncated = 1;
  if (strstr(d, "unable to lock file")) w->locked = 1;
  /* Superblock versions 0-3 are all HDF5 has ever written: another one is damage (such as
   * random bytes after a valid signature), not a newer library. */
  if (strstr(d, "bad superblock version")) w->bad_super = 1;
  else if (strstr(d, "bad object header version") || strstr(d, "bad version number"))
    w->newer = 1;
  return 0;
}

/* Writes the reason; returns 1 when it is one of the recognised causes, 0 for HDF5's own
 * descriptions. */
static int error_reason(char *buf, size_t cap) {
  stack_walk w;
  memset(&w, 0, sizeof w);
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &w);
  int known = w.not_hdf5 || w.truncated || w.locked || w.bad_super || w.newer;
  if (w.not_hdf5)
    snprintf(buf, cap, "not an HDF5 file");
  else if (w.truncated)
    snprintf(buf, cap, "truncated HDF5 file (partial copy or crash?)");
  else if (w.locked)
    snprintf(buf, cap,
             "cannot lock the file (another process may be writing it; on NFS and other "
             "file systems without locks set HDF5_USE_FILE_LOCKING=FALSE)");
  else if (w.bad_super)
    snprintf(buf, cap, "damaged HDF5 file (the superblock after the signature is unreadable)");
  else if (w.newer)
    snprintf(buf, cap,
             "written in a newer HDF5 format than this libhdf5 reads (%s); from h5py write it "
             "with libver=('earliest', 'v110')",
             w.inner);
  else if (!w.inner[0])
    snprintf(buf, cap, "HDF5 call failed");
  else if (!strcmp(w.inner, w.outer))
    snprintf(buf, cap, "%s", w.inner);
  else
    snprintf(buf, cap, "%s (%s)", w.outer, w.inner);
  H5Eclear2(H5E_DEFAULT);
  return known;
}

void kd_h5_error_reason(char *buf, size_t cap) { (void)error_reason(buf, cap); }

int kd_h5_fail(kd_error *err, const char *fmt, ...) {
  char reason[600];
  kd_h5_error_reason(reason, sizeof reason);
  if (err) {
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    kd_fail(err, "%s: %s", prefix, reason);
  }
  return -1;
}

/* ---- Checking a file in a separate process ----
 *
 * libhdf5 1.10 (Debian 12's) trusts the metadata it decodes: a damaged or hostile file can make
 * it read out of bounds, crash or loop for ever (fuzzing found global-heap, local-heap and
 * attribute-message cases within seconds). Nothing kdcl can check beforehand catches all of
 * them, so a file is first opened in a forked child that walks everything kdcl could touch:
 * every object and attribute, and their values within a total budget (not strings and
 * references: kdcl reads strings with its own checked code, read_vl_string, and never reads
 * references). A child that dies or hangs means the file would have done that to kdcl; one
 * that survives means the same reads are safe here. HDF5 errors in the child are ignored: the
 * open after it reports them. */

/* The sanitizers' death callback (libFuzzer installs one that saves the input as a crash): a
 * child that trips a sanitizer must only die. Weak, so plain builds need no sanitizer. */
extern void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

typedef struct walk_state {
  size_t bytes_left;  /* dataset and attribute values read so far count against it */
  haddr_t seen[4096]; /* object header addresses walked (hard links may form cycles) */
  size_t nseen;
  char **names; /* the current group's link names */
  size_t nnames, cap;
} walk_state;

/* Reads all values of an attribute or dataset when they fit the budget. */
static void walk_values(hid_t obj, int is_attr, walk_state *b) {
  hid_t type = is_attr ? H5Aget_type(obj) : H5Dget_type(obj);
  hid_t space = is_attr ? H5Aget_space(obj) : H5Dget_space(obj);
  hid_t mem = type >= 0 ? H5Tget_native_type(type, H5T_DIR_ASCEND) : H5I_INVALID_HID;
  hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
  size_t size = mem >= 0 ? H5Tget_size(mem) : 0;
  int vl = mem >= 0 && (H5Tdetect_class(mem, H5T_VLEN) > 0 ||
                        H5Tdetect_class(mem, H5T_STRING) > 0 ||
                        H5Tdetect_class(mem, H5T_REFERENCE) > 0);
  if (!vl && n > 0 && size > 0 && (size_t)n <= b->bytes_left / size) {
    void *buf = calloc((size_t)n, size);
    if (buf) {
      b->bytes_left -= (size_t)n * size;
      if (is_attr)
        H5Aread(obj, mem, buf);
      else
        H5Dread(obj, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
      free(buf);
    }
  }
  if (mem >= 0) H5Tclose(mem);
  if (space >= 0) H5Sclose(space);
  if (type >= 0) H5Tclose(type);
}

static herr_t walk_attr(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
  (void)info;
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a >= 0) {
    walk_values(a, 1, data);
    H5Aclose(a);
  }
  return 0;
}


static herr_t walk_link(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  (void)g, (void)info;
  walk_state *w = data;
  if (!w) return 0; /* the second pass only reads the other index */
  if (w->nnames == w->cap) {
    size_t cap = w->cap ? 2 * w->cap : 16;
    char **p = realloc(w->names, cap * sizeof *p);
    if (!p) return -1;
    w->names = p, w->cap = cap;
  }
  if (!(w->names[w->nnames] = strdup(name))) return -1;
  w->nnames++;
  return 0;
}

/* Walks object o: its attributes (both indexes), its values, and for a group every member by
 * name, going on after errors (H5Ovisit would stop at the first one, and kdcl may still read
 * what lies past it). */
static void walk_object(hid_t o, walk_state *w, int depth) {
  H5O_info_t info;
  if (H5Oget_info2(o, &info, H5O_INFO_BASIC) < 0) return;
  for (size_t i = 0; i < w->nseen; i++)
    if (w->seen[i] == info.addr) return;
  if (w->nseen == sizeof w->seen / sizeof w->seen[0] || depth > 64) return;
  w->seen[w->nseen++] = info.addr;
  hsize_t idx = 0;
  H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, walk_attr, w);
  idx = 0;
  H5Aiterate2(o, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, walk_attr, w);
  if (info.type == H5O_TYPE_DATASET) walk_values(o, 0, w);
  if (info.type != H5O_TYPE_GROUP) return;
  /* Both link indexes, as kd_h5_list_group reads them; then each member. */
  char **saved = w->names;
  size_t saved_n = w->nnames, saved_cap = w->cap;
  w->names = NULL, w->nnames = w->cap = 0;
  idx = 0;
  H5Literate(o, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, walk_link, NULL);
  idx = 0;
  H5Literate(o, H5_INDEX_NAME, H5_ITER_INC, &idx, walk_link, w);
  char **names = w->names;
  size_t n = w->nnames;
  w->names = saved, w->nnames = saved_n, w->cap = saved_cap;
  for (size_t i = 0; i < n; i++) {
    H5Lexists(o, names[i], H5P_DEFAULT);
    hid_t m = H5Oopen(o, names[i], H5P_DEFAULT);
    if (m >= 0) {
      walk_object(m, w, depth + 1);
      H5Oclose(m);
    }
    free(names[i]);
  }
  free(names);
}

/* The time limit of the check: KDCL_H5_CHECK_SECONDS (whole seconds, 1 to 99999) or 30. */
static int check_seconds(int *seconds, kd_error *err) {
  const char *meaning = "seconds a file's check in a child process may take, at least 1";
  uint64_t v = 30;
  int set;
  if (kd_env_uint("KDCL_H5_CHECK_SECONDS", 99999, meaning, &v, &set, err)) return -1;
  if (v == 0)
    return kd_fail(err, "KDCL_H5_CHECK_SECONDS=%s: expected a whole number from 1 to 99999 (%s)",
                   getenv("KDCL_H5_CHECK_SECONDS"), meaning);
  *seconds = (int)v;
  return 0;
}

/* 0 when libhdf5 read the whole file in a child without dying or hanging; else -1 and the
 * message. */
static int check_in_child(const char *path, kd_error *err) {
  int seconds = 30;
  if (check_seconds(&seconds, err)) return -1;
  pid_t pid = fork();
  if (pid < 0) return 0; /* no process to spare: open it directly, as before */
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
      dup2(null, 1);
      dup2(null, 2);
    }
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(NULL);
#ifdef M_PERTURB
    /* Fresh memory filled with a pattern, not left-over values: libhdf5 code that uses memory
     * it never wrote (such as link tables a damaged file says are longer than they are) then
     * fails here every time, not only when the left-overs happen to be bad pointers. */
    mallopt(M_PERTURB, 0xa5);
#endif
    signal(SIGALRM, SIG_DFL);
    alarm((unsigned)seconds);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t fapl = kd_h5_fapl_read_create();
    hid_t f = fapl >= 0 ? H5Fopen(path, H5F_ACC_RDONLY, fapl) : H5I_INVALID_HID;
    static walk_state w; /* static: the child's stack need not hold the address set */
    w.bytes_left = (size_t)16 << 20;
    if (f >= 0) walk_object(f, &w, 0);
    _exit(0); /* no atexit handlers, no stdio flushes, no HDF5 shutdown */
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return 0;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  if (WIFSIGNALED(status) && (WTERMSIG(status) == SIGINT || WTERMSIG(status) == SIGTERM ||
                              WTERMSIG(status) == SIGHUP))
    return kd_fail(err, "%s: interrupted while checking the file", path);
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
    return kd_fail(err,
                   "%s: damaged HDF5 file: libhdf5 did not finish reading its metadata in %d s "
                   "(KDCL_H5_CHECK_SECONDS sets the limit)",
                   path, seconds);
  return kd_fail(err, "%s: damaged HDF5 file: libhdf5 crashes reading it (%s)", path,
                 WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "memory error");
}

int kd_h5_open_read(const char *path, hid_t *file, kd_error *err) {
  kd_h5_init();
  *file = H5I_INVALID_HID;
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno == ENOENT) return kd_fail(err, "%s: no such file", path);
    return kd_fail(err, "%s: %s", path, strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) return kd_fail(err, "%s: is a directory, not an HDF5 file", path);
  if (access(path, R_OK) != 0) return kd_fail(err, "%s: %s", path, strerror(errno));
  if (st.st_size == 0) return kd_fail(err, "%s: empty file, not an HDF5 file", path);
  if (check_in_child(path, err)) return -1;
  hid_t fapl = kd_h5_fapl_read_create();
  if (fapl < 0) return kd_h5_fail(err, "%s: setting up file access", path);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  if (f < 0) {
    /* Read the error stack before any other HDF5 call (H5Pclose) clears it. */
    char reason[600];
    int known = error_reason(reason, sizeof reason);
    H5Pclose(fapl);
    if (known) return kd_fail(err, "%s: %s", path, reason);
    return kd_fail(err, "%s: damaged or truncated HDF5 file (HDF5: %s)", path, reason);
  }
  H5Pclose(fapl);
  *file = f;
  return 0;
}

/* ---- Objects ---- */

int kd_h5_exists(hid_t loc, const char *path) {
  char buf[4096];
  size_t len = strlen(path);
  if (len >= sizeof buf) return 0;
  memcpy(buf, path, len + 1);
  if (!strcmp(buf, "/") || !strcmp(buf, ".")) return 1;
  /* H5Lexists fails (rather than returning 0) when an intermediate group is missing, so each
   * prefix is checked in turn. */
  for (size_t i = 1; i <= len; i++) {
    if (buf[i] == '/' || buf[i] == '\0') {
      char saved = buf[i];
      buf[i] = '\0';
      htri_t e = H5Lexists(loc, buf, H5P_DEFAULT);
      buf[i] = saved;
      if (e <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return 0;
      }
    }
  }
  htri_t ok = H5Oexists_by_name(loc, path, H5P_DEFAULT);
  if (ok < 0) H5Eclear2(H5E_DEFAULT);
  return ok > 0;
}

static int object_type(hid_t loc, const char *path) {
  if (!kd_h5_exists(loc, path)) return -1;
  hid_t o = H5Oopen(loc, path, H5P_DEFAULT);
  if (o < 0) {
    H5Eclear2(H5E_DEFAULT);
    return -1;
  }
  int t = (int)H5Iget_type(o);
  H5Oclose(o);
  return t;
}

int kd_h5_is_dataset(hid_t loc, const char *path) { return object_type(loc, path) == H5I_DATASET; }
int kd_h5_is_group(hid_t loc, const char *path) { return object_type(loc, path) == H5I_GROUP; }

typedef struct name_list {
  char **names;
  size_t n, cap;
  int oom;
} name_list;

static herr_t collect_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  (void)g, (void)info;
  name_list *l = data;
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    char **p = realloc(l->names, cap * sizeof *p);
    if (!p) return l->oom = 1, -1;
    l->names = p, l->cap = cap;
  }
  if (!(l->names[l->n] = strdup(name))) return l->oom = 1, -1;
  l->n++;
  return 0;
}

void kd_h5_free_names(char **names, size_t n) {
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
}

int kd_h5_list_group(hid_t group, const char *what, char ***names, size_t *n, kd_error *err) {
  *names = NULL;
  *n = 0;
  name_list l = {0};
  hsize_t idx = 0;
  /* Iterating by creation order fails on groups that do not track it; then use names. */
  if (H5Literate(group, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, collect_cb, &l) < 0) {
    H5Eclear2(H5E_DEFAULT);
    int oom = l.oom;
    kd_h5_free_names(l.names, l.n);
    memset(&l, 0, sizeof l);
    if (oom) return kd_fail(err, "out of memory");
    idx = 0;
    if (H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_cb, &l) < 0) {
      oom = l.oom;
      kd_h5_free_names(l.names, l.n);
      return oom ? kd_fail(err, "out of memory") : kd_h5_fail(err, "%s: listing members", what);
    }
  }
  *names = l.names;
  *n = l.n;
  return 0;
}

void kd_h5_type_name(hid_t type, char *buf, size_t cap) {
  size_t size = H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_INTEGER:
      snprintf(buf, cap, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", size * 8);
      break;
    case H5T_FLOAT:
      snprintf(buf, cap, "float%zu", size * 8);
      break;
    case H5T_STRING:
      snprintf(buf, cap, "string");
      break;
    case H5T_COMPOUND:
      snprintf(buf, cap, "compound");
      break;
    case H5T_ENUM:
      snprintf(buf, cap, "enum");
      break;
    case H5T_VLEN:
      snprintf(buf, cap, "vlen");
      break;
    case H5T_ARRAY:
      snprintf(buf, cap, "array");
      break;
    case H5T_REFERENCE:
      snprintf(buf, cap, "reference");
      break;
    case H5T_OPAQUE:
      snprintf(buf, cap, "opaque");
      break;
    case H5T_BITFIELD:
      snprintf(buf, cap, "bitfield");
      break;
    default:
      snprintf(buf, cap, "unknown");
      break;
  }
}

int kd_h5_dataset_shape(hid_t dset, const char *what, int max_ndim, int *ndim, int64_t *dims,
                        kd_error *err) {
  hid_t space = H5Dget_space(dset);
  if (space < 0) return kd_h5_fail(err, "%s: cannot read the dataspace", what);
  H5S_class_t cls = H5Sget_simple_extent_type(space);
  if (cls == H5S_SCALAR) {
    H5Sclose(space);
    *ndim = 0;
    return 0;
  }
  if (cls != H5S_SIMPLE) {
    H5Sclose(space);
    return kd_fail(err, "%s: has no data (null dataspace)", what);
  }
  int nd = H5Sget_simple_extent_ndims(space);
  if (nd < 0 || nd > 32) {
    H5Sclose(space);
    return kd_fail(err, "%s: unreadable dataspace", what);
  }
  hsize_t d[32];
  H5Sget_simple_extent_dims(space, d, NULL);
  H5Sclose(space);
  if (nd > max_ndim)
    return kd_fail(err, "%s: has %d dimensions, at most %d supported", what, nd, max_ndim);
  for (int i = 0; i < nd; i++) {
    if (d[i] > (hsize_t)INT64_MAX) return kd_fail(err, "%s: dimension %d is too large", what, i);
    dims[i] = (int64_t)d[i];
  }
  *ndim = nd;
  return 0;
}

void kd_h5_format_shape(char *buf, size_t cap, int ndim, const int64_t *dims) {
  size_t used = 0;
  int n = snprintf(buf, cap, "[");
  if (n > 0) used = (size_t)n;
  for (int i = 0; i < ndim && used < cap; i++) {
    n = snprintf(buf + used, cap - used, "%s%" PRId64, i ? ", " : "", dims[i]);
    if (n > 0) used += (size_t)n;
  }
  if (used < cap) snprintf(buf + used, cap - used, "]");
}

/* ---- Creating files and objects ---- */

hid_t kd_h5_fapl_create(void) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0) return fapl;
  if (H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) < 0 ||
      H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 || apply_file_locking(fapl) < 0) {
    H5Pclose(fapl);
    return H5I_INVALID_HID;
  }
  return fapl;
}

hid_t kd_h5_gcpl_create(void) {
  hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
  if (gcpl < 0) return gcpl;
  if (H5Pset_obj_track_times(gcpl, 0) < 0 ||
      H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) < 0) {
    H5Pclose(gcpl);
    return H5I_INVALID_HID;
  }
  return gcpl;
}

static int is_prime(size_t n) {
  if (n < 2) return 0;
  for (size_t d = 2; d * d <= n; d++)
    if (n % d == 0) return 0;
  return 1;
}

hid_t kd_h5_dapl_chunk_cache(size_t cache_bytes, size_t chunk_bytes) {
  size_t fit = chunk_bytes ? cache_bytes / chunk_bytes : 0;
  size_t nslots = fit > 2000 ? 200000 : fit * 100 < 521 ? 521 : fit * 100;
  while (!is_prime(nslots)) nslots++;
  hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
  if (dapl >= 0 && H5Pset_chunk_cache(dapl, nslots, cache_bytes, 0.75) < 0) {
    H5Pclose(dapl);
    return H5I_INVALID_HID;
  }
  return dapl;
}

hid_t kd_h5_dcpl_create(void) {
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (dcpl < 0) return dcpl;
  if (H5Pset_obj_track_times(dcpl, 0) < 0) {
    H5Pclose(dcpl);
    return H5I_INVALID_HID;
  }
  return dcpl;
}

hid_t kd_h5_group_create(hid_t loc, const char *name, kd_error *err) {
  char buf[4096];
  size_t len = strlen(name);
  if (len == 0 || len >= sizeof buf) {
    kd_fail(err, "bad HDF5 group name '%s'", name);
    return H5I_INVALID_HID;
  }
  memcpy(buf, name, len + 1);
  hid_t gcpl = kd_h5_gcpl_create();
  if (gcpl < 0) {
    kd_h5_fail(err, "creating group %s", name);
    return H5I_INVALID_HID;
  }
  /* Start at the root for an absolute path, else at loc (reopened so closing it is uniform). */
  char *p = buf;
  hid_t cur = H5Oopen(loc, *p == '/' ? "/" : ".", H5P_DEFAULT);
  while (*p == '/') p++;
  while (cur >= 0 && *p) {
    char *slash = strchr(p, '/');
    if (slash) *slash = '\0';
    if (*p) {
      htri_t e = H5Lexists(cur, p, H5P_DEFAULT);
      hid_t next = e > 0    ? H5Gopen2(cur, p, H5P_DEFAULT)
                   : e == 0 ? H5Gcreate2(cur, p, H5P_DEFAULT, gcpl, H5P_DEFAULT)
                            : H5I_INVALID_HID;
      if (next < 0) {
        kd_h5_fail(err, "creating group %s", name);
        H5Oclose(cur);
        H5Pclose(gcpl);
        return H5I_INVALID_HID;
      }
      H5Oclose(cur);
      cur = next;
    }
    if (!slash) break;
    p = slash + 1;
  }
  H5Pclose(gcpl);
  if (cur < 0) kd_h5_fail(err, "creating group %s", name);
  return cur;
}

/* Splits name into its parent group (created when missing; loc itself reopened when there is
 * no slash) and the last component (pointer into name). */
static hid_t parent_group(hid_t loc, const char *name, const char **base, kd_error *err) {
  const char *slash = strrchr(name, '/');
  if (!slash) {
    *base = name;
    hid_t g = H5Oopen(loc, ".", H5P_DEFAULT);
    if (g < 0) kd_h5_fail(err, "opening the parent of %s", name);
    return g;
  }
  *base = slash + 1;
  if (slash == name) {
    hid_t g = H5Oopen(loc, "/", H5P_DEFAULT);
    if (g < 0) kd_h5_fail(err, "opening the parent of %s", name);
    return g;
  }
  char dir[4096];
  size_t n = (size_t)(slash - name);
  if (n >= sizeof dir) {
    kd_fail(err, "HDF5 path too long: %s", name);
    return H5I_INVALID_HID;
  }
  memcpy(dir, name, n);
  dir[n] = '\0';
  return kd_h5_group_create(loc, dir, err);
}

int kd_h5_write_dataset(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int ndim,
                        const int64_t *dims, const void *data, kd_error *err) {
  if (ndim < 0 || ndim > 32) return kd_fail(err, "writing %s: bad rank %d", name, ndim);
  hsize_t d[32];
  hssize_t npoints = 1;
  for (int i = 0; i < ndim; i++) {
    if (dims[i] < 0) return kd_fail(err, "writing %s: negative dimension", name);
    d[i] = (hsize_t)dims[i];
    npoints *= dims[i];
  }
  const char *base;
  hid_t parent = parent_group(loc, name, &base, err);
  if (parent < 0) return -1;
  hid_t space = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, d, NULL);
  hid_t dcpl = kd_h5_dcpl_create();
  hid_t dset = H5I_INVALID_HID;
  int rc = -1;
  if (space < 0 || dcpl < 0) {
    kd_h5_fail(err, "writing %s", name);
    goto done;
  }
  dset = H5Dcreate2(parent, base, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (dset < 0) {
    kd_h5_fail(err, "creating dataset %s", name);
    goto done;
  }
  if (npoints > 0 && data && H5Dwrite(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    kd_h5_fail(err, "writing dataset %s", name);
    goto done;
  }
  rc = 0;
done:
  if (dset >= 0) H5Dclose(dset);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (space >= 0) H5Sclose(space);
  H5Oclose(parent);
  return rc;
}

static hid_t vl_utf8_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0) return t;
  if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
    H5Tclose(t);
    return H5I_INVALID_HID;
  }
  return t;
}

int kd_h5_write_string_dataset(hid_t loc, const char *name, const char *text, kd_error *err) {
  hid_t type = vl_utf8_type();
  if (type < 0) return kd_h5_fail(err, "writing string %s", name);
  const char *p = text ? text : "";
  int rc = kd_h5_write_dataset(loc, name, type, type, 0, NULL, &p, err);
  H5Tclose(type);
  return rc;
}

/* ---- Variable-length strings, read without libhdf5's global-heap code ----
 *
 * libhdf5 1.10's H5HG_read trusts the heap object index and the lengths a file holds (a damaged
 * file makes it copy out of bounds or loop for ever). kdcl reads its variable-length strings
 * itself instead: a conversion into a tagged opaque type hands over the raw descriptor the file
 * stores (length, collection address, object index), and the object is found by walking its
 * global heap collection with every offset checked. */
#define KD_VL_RAW_TAG "kdcl raw variable-length descriptor"

static herr_t vl_raw_conv(hid_t src, hid_t dst, H5T_cdata_t *cdata, size_t nelmts,
                          size_t buf_stride, size_t bkg_stride, void *buf, void *bkg, hid_t dxpl) {
  (void)nelmts, (void)buf_stride, (void)bkg_stride, (void)buf, (void)bkg, (void)dxpl;
  if (cdata->command == H5T_CONV_INIT) {
    cdata->need_bkg = H5T_BKG_NO;
    if (H5Tget_class(src) != H5T_STRING || H5Tis_variable_str(src) <= 0 ||
        H5Tget_class(dst) != H5T_OPAQUE)
      return -1;
    char *tag = H5Tget_tag(dst);
    int ours = tag && !strcmp(tag, KD_VL_RAW_TAG);
    H5free_memory(tag);
    return ours ? 0 : -1;
  }
  if (cdata->command == H5T_CONV_CONV) /* the file's descriptor bytes are the result */
    return H5Tget_size(src) == H5Tget_size(dst) ? 0 : -1;
  return 0; /* H5T_CONV_FREE */
}

static uint64_t le_bytes(const unsigned char *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = n; i-- > 0;) v = v << 8 | p[i];
  return v;
}

/* The len bytes of object idx of the global heap collection at addr (relative to the file's
 * base address), read with pread from the file obj lives in; NUL-terminated in *out. */
static int read_heap_object(hid_t obj, uint64_t addr, uint32_t idx, uint32_t len,
                            const char *what, char **out, kd_error *err) {
  const char *damaged = "damaged HDF5 file: its variable-length string";
  hid_t file = H5Iget_file_id(obj);
  hid_t fcpl = file >= 0 ? H5Fget_create_plist(file) : H5I_INVALID_HID;
  size_t sizeof_addr = 0, sizeof_size = 0;
  hsize_t base = 0;
  char name[4096] = "";
  int ok = fcpl >= 0 && H5Pget_sizes(fcpl, &sizeof_addr, &sizeof_size) >= 0 &&
           H5Pget_userblock(fcpl, &base) >= 0 && file >= 0 &&
           H5Fget_name(file, name, sizeof name) > 0;
  if (fcpl >= 0) H5Pclose(fcpl);
  if (file >= 0) H5Fclose(file);
  if (!ok) return kd_h5_fail(err, "%s", what);
  size_t L = sizeof_size;
  if (L != 2 && L != 4 && L != 8)
    return kd_fail(err, "%s: %s has an unsupported length size", what, damaged);
  int fd = open(name, O_RDONLY);
  if (fd < 0) return kd_fail(err, "%s: %s", name, strerror(errno));
  struct stat st;
  unsigned char hdr[16];
  uint64_t size = 0, at = 0;
  unsigned char *heap = NULL;
  int rc = -1;
  if (fstat(fd, &st) != 0 || addr > UINT64_MAX - base) goto bad;
  at = base + addr;
  if (at > (uint64_t)st.st_size || (uint64_t)st.st_size - at < 8 + L ||
      pread(fd, hdr, 8 + L, (off_t)at) != (ssize_t)(8 + L) || memcmp(hdr, "GCOL", 4) || hdr[4] != 1)
    goto bad;
  size = le_bytes(hdr + 8, L);
  if (size < 8 + L || size > (uint64_t)st.st_size - at || size > ((uint64_t)1 << 30)) goto bad;
  heap = malloc((size_t)size);
  if (!heap) {
    rc = kd_fail(err, "%s: out of memory", what);
    goto done;
  }
  if (pread(fd, heap, (size_t)size, (off_t)at) != (ssize_t)size) goto bad;
  for (uint64_t p = 8 + L; p + 8 + L <= size;) {
    uint32_t i = (uint32_t)le_bytes(heap + p, 2);
    uint64_t n = le_bytes(heap + p + 8, L);
    if (i == 0) break; /* free space: the rest of the collection */
    if (n > size - p - 8 - L) break;
    if (i == idx) {
      if (n < len) break;
      *out = malloc((size_t)len + 1);
      if (!*out) {
        rc = kd_fail(err, "%s: out of memory", what);
        goto done;
      }
      memcpy(*out, heap + p + 8 + L, len);
      (*out)[len] = '\0';
      rc = 0;
      goto done;
    }
    p += 8 + L + (n + 7) / 8 * 8;
  }
bad:
  rc = kd_fail(err, "%s: %s is not where the file says (global heap object %u at %" PRIu64 ")",
               what, damaged, (unsigned)idx, addr);
done:
  free(heap);
  close(fd);
  return rc;
}

/* Reads the one variable-length string of obj (an attribute or a dataset) into *out. */
static int read_vl_string(hid_t obj, int is_attr, const char *what, char **out, kd_error *err) {
  static int registered;
  if (!registered) {
    hid_t vl = H5Tcopy(H5T_C_S1), raw = H5Tcreate(H5T_OPAQUE, 16);
    registered = vl >= 0 && raw >= 0 && H5Tset_size(vl, H5T_VARIABLE) >= 0 &&
                 H5Tset_tag(raw, KD_VL_RAW_TAG) >= 0 &&
                 H5Tregister(H5T_PERS_SOFT, "kdcl_vl_raw", vl, raw, vl_raw_conv) >= 0;
    if (vl >= 0) H5Tclose(vl);
    if (raw >= 0) H5Tclose(raw);
    if (!registered) return kd_h5_fail(err, "%s: setting up the string reader", what);
  }
  hid_t raw = H5Tcreate(H5T_OPAQUE, 16);
  unsigned char d[16];
  if (raw < 0 || H5Tset_tag(raw, KD_VL_RAW_TAG) < 0) {
    if (raw >= 0) H5Tclose(raw);
    return kd_h5_fail(err, "%s", what);
  }
  herr_t r = is_attr ? H5Aread(obj, raw, d) : H5Dread(obj, raw, H5S_ALL, H5S_ALL, H5P_DEFAULT, d);
  H5Tclose(raw);
  if (r < 0) return kd_h5_fail(err, "%s: cannot read the string", what);
  uint32_t len = (uint32_t)le_bytes(d, 4), idx = (uint32_t)le_bytes(d + 12, 4);
  uint64_t addr = le_bytes(d + 4, 8);
  if (len == 0) {
    *out = strdup("");
    return *out ? 0 : kd_fail(err, "%s: out of memory", what);
  }
  return read_heap_object(obj, addr, idx, len, what, out, err);
}

/* Reads one string from an attribute (is_attr) or dataset of string type into malloc'd *out. */
static int read_string_obj(hid_t obj, int is_attr, const char *what, char **out, kd_error *err) {
  *out = NULL;
  hid_t ftype = is_attr ? H5Aget_type(obj) : H5Dget_type(obj);
  hid_t space = is_attr ? H5Aget_space(obj) : H5Dget_space(obj);
  hid_t mtype = H5I_INVALID_HID;
  int rc = -1;
  if (ftype < 0 || space < 0) {
    kd_h5_fail(err, "%s", what);
    goto done;
  }
  if (H5Tget_class(ftype) != H5T_STRING) {
    char tn[32];
    kd_h5_type_name(ftype, tn, sizeof tn);
    kd_fail(err, "%s: has type %s but a string is needed", what, tn);
    goto done;
  }
  if (H5Sget_simple_extent_npoints(space) != 1) {
    kd_fail(err, "%s: holds %lld strings but exactly one is needed", what,
            (long long)H5Sget_simple_extent_npoints(space));
    goto done;
  }
  H5T_cset_t cset = H5Tget_cset(ftype);
  htri_t vl = H5Tis_variable_str(ftype);
  mtype = H5Tcopy(H5T_C_S1);
  if (vl > 0) {
    if (read_vl_string(obj, is_attr, what, out, err)) goto done;
  } else {
    size_t size = H5Tget_size(ftype);
    if (size == 0 || size > ((size_t)1 << 30)) {
      kd_fail(err, "%s: bad string size", what);
      goto done;
    }
    if (mtype < 0 || H5Tset_size(mtype, size + 1) < 0 ||
        H5Tset_strpad(mtype, H5T_STR_NULLTERM) < 0 || H5Tset_cset(mtype, cset) < 0) {
      kd_h5_fail(err, "%s", what);
      goto done;
    }
    char *buf = calloc(size + 1, 1);
    if (!buf) {
      kd_fail(err, "%s: out of memory", what);
      goto done;
    }
    herr_t r = is_attr ? H5Aread(obj, mtype, buf)
                       : H5Dread(obj, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    if (r < 0) {
      free(buf);
      kd_h5_fail(err, "%s: cannot read the string", what);
      goto done;
    }
    buf[size] = '\0';
    *out = buf;
  }
  if (!*out) {
    kd_fail(err, "%s: out of memory", what);
    goto done;
  }
  rc = 0;
done:
  if (mtype >= 0) H5Tclose(mtype);
  if (space >= 0) H5Sclose(space);
  if (ftype >= 0) H5Tclose(ftype);
  return rc;
}

int kd_h5_read_string_dataset(hid_t loc, const char *name, const char *what, char **out,
                              kd_error *err) {
  *out = NULL;
  if (!kd_h5_is_dataset(loc, name))
    return kd_fail(err, "%s: missing (a scalar string dataset)", what);
  hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
  if (d < 0) return kd_h5_fail(err, "%s", what);
  int rc = read_string_obj(d, 0, what, out, err);
  H5Dclose(d);
  return rc;
}

/* ---- Attributes ---- */

int kd_h5_has_attr(hid_t obj, const char *name) {
  htri_t e = H5Aexists(obj, name);
  if (e < 0) H5Eclear2(H5E_DEFAULT);
  return e > 0;
}

/* Creates (replacing any existing) attribute name of type ftype with n values (0 = scalar)
 * and writes data of type mtype. */
static int write_attr(hid_t obj, const char *name, hid_t ftype, hid_t mtype, size_t n,
                      const void *data, kd_error *err) {
  if (kd_h5_has_attr(obj, name) && H5Adelete(obj, name) < 0)
    return kd_h5_fail(err, "replacing attribute %s", name);
  hsize_t dim = n;
  hid_t space = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
  if (space < 0) return kd_h5_fail(err, "writing attribute %s", name);
  hid_t a = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
  int rc = 0;
  if (a < 0 || H5Awrite(a, mtype, data) < 0) rc = kd_h5_fail(err, "writing attribute %s", name);
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
  return rc;
}

int kd_h5_write_attr_string(hid_t obj, const char *name, const char *value, kd_error *err) {
  hid_t type = vl_utf8_type();
  if (type < 0) return kd_h5_fail(err, "writing attribute %s", name);
  const char *p = value ? value : "";
  int rc = write_attr(obj, name, type, type, 0, &p, err);
  H5Tclose(type);
  return rc;
}

int kd_h5_write_attr_ints(hid_t obj, const char *name, const int32_t *v, size_t n, kd_error *err) {
  if (n == 0) return kd_fail(err, "writing attribute %s: no values", name);
  return write_attr(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT32, n, v, err);
}

int kd_h5_write_attr_int(hid_t obj, const char *name, int32_t value, kd_error *err) {
  return write_attr(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT32, 0, &value, err);
}

int kd_h5_write_attr_float(hid_t obj, const char *name, float value, kd_error *err) {
  return write_attr(obj, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 0, &value, err);
}

int kd_h5_write_attr_double(hid_t obj, const char *name, double value, kd_error *err) {
  return write_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, &value, err);
}

/* Opens attribute name with its type and point count; errors name what. */
static hid_t open_attr(hid_t obj, const char *name, const char *what, hid_t *type,
                       hssize_t *npoints, kd_error *err) {
  if (!kd_h5_has_attr(obj, name)) {
    kd_fail(err, "%s: has no attribute %s", what, name);
    return H5I_INVALID_HID;
  }
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) {
    kd_h5_fail(err, "%s: attribute %s", what, name);
    return a;
  }
  *type = H5Aget_type(a);
  hid_t space = H5Aget_space(a);
  *npoints = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
  if (space >= 0) H5Sclose(space);
  if (*type < 0 || *npoints < 0) {
    kd_h5_fail(err, "%s: attribute %s", what, name);
    if (*type >= 0) H5Tclose(*type);
    H5Aclose(a);
    return H5I_INVALID_HID;
  }
  return a;
}

int kd_h5_read_attr_string(hid_t obj, const char *name, const char *what, char *buf, size_t cap,
                           kd_error *err) {
  if (!kd_h5_has_attr(obj, name)) return kd_fail(err, "%s: has no attribute %s", what, name);
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return kd_h5_fail(err, "%s: attribute %s", what, name);
  char label[700], *s = NULL;
  snprintf(label, sizeof label, "%s: attribute %s", what, name);
  int rc = read_string_obj(a, 1, label, &s, err);
  H5Aclose(a);
  if (rc) return rc;
  size_t len = strlen(s);
  if (len >= cap) {
    free(s);
    return kd_fail(err, "%s: attribute %s is too long (%zu bytes)", what, name, len);
  }
  memcpy(buf, s, len + 1);
  free(s);
  return 0;
}

int kd_h5_read_attr_ints(hid_t obj, const char *name, const char *what, int32_t *v, size_t cap,
                         size_t *n, kd_error *err) {
  hid_t type;
  hssize_t np;
  hid_t a = open_attr(obj, name, what, &type, &np, err);
  if (a < 0) return -1;
  int rc = -1;
  int64_t *tmp = NULL;
  if (H5Tget_class(type) != H5T_INTEGER) {
    char tn[32];
    kd_h5_type_name(type, tn, sizeof tn);
    kd_fail(err, "%s: attribute %s has type %s but integers are needed", what, name, tn);
    goto done;
  }
  if (np < 1 || (size_t)np > cap) {
    kd_fail(err, "%s: attribute %s has %lld values, expected 1 to %zu", what, name, (long long)np,
            cap);
    goto done;
  }
  tmp = malloc((size_t)np * sizeof *tmp);
  if (!tmp) {
    kd_fail(err, "out of memory");
    goto done;
  }
  /* Read as int64 (unsigned values above INT64_MAX saturate) and range-check to int32 here. */
  if (H5Aread(a, H5T_NATIVE_INT64, tmp) < 0) {
    kd_h5_fail(err, "%s: reading attribute %s", what, name);
    goto done;
  }
  for (hssize_t i = 0; i < np; i++) {
    if (tmp[i] < INT32_MIN || tmp[i] > INT32_MAX) {
      kd_fail(err, "%s: attribute %s value %" PRId64 " is outside the int32 range", what, name,
              tmp[i]);
      goto done;
    }
    v[i] = (int32_t)tmp[i];
  }
  *n = (size_t)np;
  rc = 0;
done:
  free(tmp);
  H5Tclose(type);
  H5Aclose(a);
  return rc;
}

int kd_h5_read_attr_double(hid_t obj, const char *name, const char *what, double *value,
                           kd_error *err) {
  hid_t type;
  hssize_t np;
  hid_t a = open_attr(obj, name, what, &type, &np, err);
  if (a < 0) return -1;
  int rc = -1;
  H5T_class_t cls = H5Tget_class(type);
  if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
    char tn[32];
    kd_h5_type_name(type, tn, sizeof tn);
    kd_fail(err, "%s: attribute %s has type %s but a number is needed", what, name, tn);
  } else if (np != 1) {
    kd_fail(err, "%s: attribute %s has %lld values but one number is needed", what, name,
            (long long)np);
  } else if (H5Aread(a, H5T_NATIVE_DOUBLE, value) < 0) {
    kd_h5_fail(err, "%s: reading attribute %s", what, name);
  } else {
    rc = 0;
  }
  H5Tclose(type);
  H5Aclose(a);
  return rc;
}

int kd_h5_check_format(hid_t file, const char *path, const char *expect, int required,
                       kd_error *err) {
  if (kd_h5_has_attr(file, "format")) {
    char fmt[256];
    if (kd_h5_read_attr_string(file, "format", path, fmt, sizeof fmt, err)) return -1;
    if (strcmp(fmt, expect))
      return kd_fail(err, "%s: root attribute format is \"%s\" but \"%s\" was expected", path, fmt,
                     expect);
  } else if (required) {
    return kd_fail(err, "%s: not a %s file (no root attribute format = \"%s\")", path, expect,
                   expect);
  }
  if (kd_h5_has_attr(file, "format_version")) {
    int32_t v[4];
    size_t n;
    if (kd_h5_read_attr_ints(file, "format_version", path, v, 4, &n, err)) return -1;
    if (v[0] != 1)
      return kd_fail(err,
                     "%s: root attribute format_version is [%d, %d] but this kdcl reads %s version "
                     "1.x only (written by a newer kdcl?)",
                     path, (int)v[0], n > 1 ? (int)v[1] : 0, expect);
  }
  return 0;
}

/* ---- Atomic writes ---- */

int kd_h5_writer_begin(kd_h5_writer *w, const char *path, const char *format, kd_error *err) {
  kd_h5_init();
  memset(w, 0, sizeof *w);
  w->file = H5I_INVALID_HID;
  size_t len = strlen(path);
  if (len == 0 || len >= sizeof w->path) return kd_fail(err, "bad output path '%s'", path);
  memcpy(w->path, path, len + 1);
  snprintf(w->tmp_path, sizeof w->tmp_path, "%s.tmp", path);

  hid_t fapl = kd_h5_fapl_create();
  hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
  if (fapl < 0 || fcpl < 0 || H5Pset_obj_track_times(fcpl, 0) < 0 ||
      H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) < 0) {
    kd_h5_fail(err, "%s: setting up file properties", path);
    if (fapl >= 0) H5Pclose(fapl);
    if (fcpl >= 0) H5Pclose(fcpl);
    w->tmp_path[0] = '\0';
    return -1;
  }
  w->file = H5Fcreate(w->tmp_path, H5F_ACC_TRUNC, fcpl, fapl);
  char reason[600] = "";
  if (w->file < 0) kd_h5_error_reason(reason, sizeof reason); /* before H5Pclose clears it */
  H5Pclose(fapl);
  H5Pclose(fcpl);
  if (w->file < 0) {
    /* Name the usual cause plainly instead of HDF5's errno text. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
      snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
      dir[1] = '\0';
    else
      *slash = '\0';
    struct stat st;
    w->tmp_path[0] = '\0';
    if (stat(dir, &st) != 0)
      return kd_fail(err, "%s: cannot create: directory %s does not exist", path, dir);
    if (!S_ISDIR(st.st_mode))
      return kd_fail(err, "%s: cannot create: %s is not a directory", path, dir);
    /* The system's reason, when creating the file at all fails, says it best. */
    char tmp[4100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd >= 0) {
      close(fd);
      unlink(tmp);
    } else if (errno != EEXIST) {
      return kd_fail(err, "%s: cannot create %s.tmp: %s", path, path, strerror(errno));
    }
    return kd_fail(err, "%s: cannot create %s.tmp: %s", path, path, reason);
  }
  int32_t version[2] = {1, 0};
  if (kd_h5_write_attr_string(w->file, "format", format, err) ||
      kd_h5_write_attr_ints(w->file, "format_version", version, 2, err)) {
    kd_fail_context(err, "%s", path);
    kd_h5_writer_abort(w);
    return -1;
  }
  return 0;
}

int kd_h5_writer_commit(kd_h5_writer *w, kd_error *err) {
  if (w->file < 0) return kd_fail(err, "%s: no file open for writing", w->path);
  herr_t closed = H5Fclose(w->file);
  w->file = H5I_INVALID_HID;
  if (closed < 0) {
    kd_h5_fail(err, "%s: closing %s", w->path, w->tmp_path);
    kd_h5_writer_abort(w);
    return -1;
  }
  int fd = open(w->tmp_path, O_RDONLY);
  if (fd < 0 || fsync(fd) != 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    kd_fail(err, "%s: syncing %s: %s", w->path, w->tmp_path, strerror(e));
    kd_h5_writer_abort(w);
    return -1;
  }
  close(fd);
  if (rename(w->tmp_path, w->path) != 0) {
    int e = errno;
    kd_fail(err, "%s: renaming %s over it: %s", w->path, w->tmp_path, strerror(e));
    kd_h5_writer_abort(w);
    return -1;
  }
  w->tmp_path[0] = '\0';
  /* Make the rename itself durable. Best effort: some file systems refuse fsync on a
   * directory, and the new file is already in place either way. */
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", w->path);
  char *slash = strrchr(dir, '/');
  if (!slash)
    snprintf(dir, sizeof dir, ".");
  else if (slash == dir)
    dir[1] = '\0';
  else
    *slash = '\0';
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
  return 0;
}

void kd_h5_writer_abort(kd_h5_writer *w) {
  if (w->file >= 0) {
    H5Fclose(w->file);
    w->file = H5I_INVALID_HID;
    H5Eclear2(H5E_DEFAULT);
  }
  if (w->tmp_path[0]) {
    unlink(w->tmp_path);
    w->tmp_path[0] = '\0';
  }
}
