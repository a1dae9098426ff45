/* HDF5 helpers shared by the dataset, checkpoint, logits and inspect code: one clear message
 * per failure, attributes, string datasets, and the write-to-tmp-then-rename file protocol. */
#ifndef KD_H5UTIL_H
#define KD_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"

/* Silences HDF5's automatic error printing for the calling thread (the setting is per thread,
 * so every thread that calls HDF5 must call this once; repeated calls are harmless). */
void kd_h5_init(void);

/* ---- File locking ---- */

/* HDF5 locks files it opens (a reader and a writer of one file refuse each other); on file
 * systems without locks (NFS, some FUSE and container mounts) that fails. Off with the CLI's
 * --no-file-locking, or with HDF5_USE_FILE_LOCKING=FALSE (or 0) in the environment, which
 * libhdf5 also reads. The setting applies to every file access list made by this module and
 * to kd_output_lock. */
void kd_h5_set_file_locking(int enabled);
/* 1 unless --no-file-locking or HDF5_USE_FILE_LOCKING=FALSE|0 turned locking off. */
int kd_h5_file_locking(void);

/* An exclusive lock held by a process for as long as it writes an output file. */
typedef struct kd_output_lock_t {
  int fd;
  char path[4200]; /* PATH.lock */
} kd_output_lock_t;

/* Takes the lock for writing `path` (given as flag): an flock on PATH.lock, which holds the
 * holder's pid. A second process asking for it is refused at once ("another process (pid N) is
 * writing it"), so two runs never interleave their checkpoints. The lock dies with the
 * process (a stale PATH.lock left by a killed one is reused); kd_output_unlock removes the
 * file. With locking off, nothing is locked (lock->fd = -1). */
int kd_output_lock(const char *flag, const char *path, kd_output_lock_t *lock, kd_error *err);
void kd_output_unlock(kd_output_lock_t *lock);

/* Formats "<fmt...>: <reason>", where reason comes from HDF5's current error stack of this
 * thread: "not an HDF5 file", "truncated HDF5 file (partial copy or crash?)", a file-locking
 * hint naming HDF5_USE_FILE_LOCKING=FALSE, "damaged HDF5 file (...superblock...)", "written by
 * a newer HDF5 ...", or else HDF5's own outermost and innermost descriptions. Returns -1 (so `return kd_h5_fail(...)`). */
int kd_h5_fail(kd_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The reason part of kd_h5_fail alone, written into buf (cap bytes). */
void kd_h5_error_reason(char *buf, size_t cap);

/* Opens an existing file read-only (with the file-locking setting), after libhdf5 has read all of
 * it in a forked child without crashing or hanging (KDCL_H5_CHECK_SECONDS, default 30, bounds
 * that; see h5util.c). Errors name the path: "no such file", "is a directory", "not an HDF5
 * file", "truncated HDF5 file (partial copy or crash?)", locking, "damaged HDF5 file: libhdf5
 * crashes reading it", else "damaged or truncated HDF5 file (HDF5: ...)". */
int kd_h5_open_read(const char *path, hid_t *file, kd_error *err);

/* ---- Objects ---- */

/* 1 if the slash-separated path (absolute or relative to loc) names an existing object, 0
 * if any component is missing or is a dangling link; never fails. */
int kd_h5_exists(hid_t loc, const char *path);
/* 1 if path names a dataset, 0 if not (missing or a group). */
int kd_h5_is_dataset(hid_t loc, const char *path);
/* 1 if path names a group, 0 if not. */
int kd_h5_is_group(hid_t loc, const char *path);

/* The member names of an open group, in creation order when the group tracks it (files kdcl
 * writes) else in name order (h5py's default), as a malloc'd array of *n malloc'd strings;
 * free with kd_h5_free_names. `what` names the group in messages. */
int kd_h5_list_group(hid_t group, const char *what, char ***names, size_t *n, kd_error *err);
void kd_h5_free_names(char **names, size_t n);

/* A short numpy-style name for an HDF5 datatype: "uint8", "int32", "float32", "float64",
 * "string", "compound", ... (buf of cap bytes, always terminated). */
void kd_h5_type_name(hid_t type, char *buf, size_t cap);

/* Rank and dimensions of a dataset's simple dataspace (rank <= max_ndim, else an error that
 * names the object). Scalar datasets have rank 0. */
int kd_h5_dataset_shape(hid_t dset, const char *what, int max_ndim, int *ndim, int64_t *dims,
                        kd_error *err);

/* Formats dims as "[10, 20]" into buf. */
void kd_h5_format_shape(char *buf, size_t cap, int ndim, const int64_t *dims);

/* ---- Creating files and objects ---- */

/* A file access list with libver bounds (V18, V18) and a strong close degree (H5Fclose
 * closes every object still open), and an object creation list with obj_track_times off and
 * link creation order tracked (groups list their members in the order they were written),
 * and the file-locking setting.
 * The caller closes them with H5Pclose; H5I_INVALID_HID on failure. */
hid_t kd_h5_fapl_create(void);
/* A plain file access list (library defaults) with only the file-locking setting applied, for
 * opening existing files. H5I_INVALID_HID on failure. */
hid_t kd_h5_fapl_read_create(void);
hid_t kd_h5_gcpl_create(void);
/* A dataset creation list with obj_track_times off (contiguous unless the caller adds
 * chunking). */
hid_t kd_h5_dcpl_create(void);
/* A dataset access list with a chunk cache of cache_bytes for chunks of chunk_bytes (> 0): hash
 * slots ~100x the chunks that fit, at least 521 and at most ~200000 (each slot is a pointer),
 * a prime as libhdf5 advises. Returns H5I_INVALID_HID when libhdf5 refuses; close it. */
hid_t kd_h5_dapl_chunk_cache(size_t cache_bytes, size_t chunk_bytes);

/* Creates group `name` under loc (intermediate groups too, each with kd_h5_gcpl_create's
 * properties) or opens it when it already exists. Returns the group id or a negative id. */
hid_t kd_h5_group_create(hid_t loc, const char *name, kd_error *err);

/* Writes a dataset `name` under loc (intermediate groups created) of file type ftype from
 * memory of type mtype, shape dims[ndim] (ndim 0 = scalar), contiguous and unfiltered. */
int kd_h5_write_dataset(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int ndim,
                        const int64_t *dims, const void *data, kd_error *err);

/* A scalar variable-length UTF-8 string dataset (h5py reads it with [()] as bytes, or
 * .asstr()[()] as str). */
int kd_h5_write_string_dataset(hid_t loc, const char *name, const char *text, kd_error *err);
/* Reads a scalar string dataset (variable or fixed length) into a malloc'd NUL-terminated
 * string *out (caller frees). Errors name `what` (e.g. "ckpt.h5: /meta/model_config").
 * Variable-length strings are taken from their global heap collection by kdcl's own bounds-
 * checked reader, not libhdf5's (which a damaged file can crash or hang); the attribute reader
 * below does the same. */
int kd_h5_read_string_dataset(hid_t loc, const char *name, const char *what, char **out,
                              kd_error *err);

/* ---- Attributes (on any object: file/root, group, dataset) ---- */

/* 1 if obj has attribute name, else 0. */
int kd_h5_has_attr(hid_t obj, const char *name);
/* Scalar variable-length UTF-8 string attribute (h5py reads it as str). */
int kd_h5_write_attr_string(hid_t obj, const char *name, const char *value, kd_error *err);
/* Reads a string attribute (variable or fixed length, scalar or one element) into buf of
 * cap bytes; a longer value is an error. `what` names the object in messages. */
int kd_h5_read_attr_string(hid_t obj, const char *name, const char *what, char *buf, size_t cap,
                           kd_error *err);
/* 1-D int32 attribute of n values (stored as little-endian int32); n == 0 is not allowed. */
int kd_h5_write_attr_ints(hid_t obj, const char *name, const int32_t *v, size_t n, kd_error *err);
/* Reads an integer attribute (any integer type, converted to int32 with a range check) of
 * 1..cap values; *n receives the count. Scalars count as one value. */
int kd_h5_read_attr_ints(hid_t obj, const char *name, const char *what, int32_t *v, size_t cap,
                         size_t *n, kd_error *err);
/* Scalar int32 attribute. */
int kd_h5_write_attr_int(hid_t obj, const char *name, int32_t value, kd_error *err);
/* Scalar float32 / float64 attributes (little-endian in the file). */
int kd_h5_write_attr_float(hid_t obj, const char *name, float value, kd_error *err);
int kd_h5_write_attr_double(hid_t obj, const char *name, double value, kd_error *err);
/* Reads a numeric (integer or float) attribute with one value as a double. */
int kd_h5_read_attr_double(hid_t obj, const char *name, const char *what, double *value,
                           kd_error *err);

/* Checks the root attributes `format` and `format_version` of an open file: `format` must
 * equal expect (when absent: an error if required, else accepted), `format_version` (when
 * present) must have major version 1. Messages name the file and what was found. */
int kd_h5_check_format(hid_t file, const char *path, const char *expect, int required,
                       kd_error *err);

/* ---- Atomic writes ---- */

/* A file being written under a temporary name: NAME.tmp while open, NAME after commit. */
typedef struct kd_h5_writer {
  char path[4096];
  char tmp_path[4100];
  hid_t file;
} kd_h5_writer;

/* Creates PATH.tmp (truncating any stale one) with kd_h5_fapl_create's properties and
 * root attributes format=<format> (VL string) and format_version=[1, 0] (int32). */
int kd_h5_writer_begin(kd_h5_writer *w, const char *path, const char *format, kd_error *err);
/* Closes the file, fsyncs it, renames PATH.tmp over PATH and fsyncs the directory. On
 * failure PATH is untouched and PATH.tmp removed. */
int kd_h5_writer_commit(kd_h5_writer *w, kd_error *err);
/* Closes and removes PATH.tmp after a failure; PATH is untouched. Safe to call twice. */
void kd_h5_writer_abort(kd_h5_writer *w);

#endif
