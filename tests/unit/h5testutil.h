/* Shared fixtures for the unit tests of HDF5 files (datasets, teachers, checkpoints): a fresh
 * temporary directory per test process, paths in it, and refusals on open. */
#ifndef KD_H5TESTUTIL_H
#define KD_H5TESTUTIL_H

#include <hdf5.h>

#include "testutil.h"

/* Group setup: kd_h5_init, then a fresh directory /tmp/kdcl-<tag>-XXXXXX. Returns 0, or -1
 * when the directory cannot be made. Call from the cmocka group setup. */
int kd_test_h5_setup(const char *tag);

/* Group teardown (a cmocka group teardown as it is): removes the directory and all in it. */
int kd_test_h5_teardown(void **state);

/* The directory of kd_test_h5_setup. */
const char *kd_test_tmp_dir(void);

/* <dir>/<name>, in one of 16 rotating static buffers (valid for the next 15 calls). */
const char *kd_test_tmp_path(const char *name);

/* The HDF5 file at path, opened read-write; fails the test when it cannot. */
hid_t kd_test_h5_open_rw(const char *path);

/* In the HDF5 file at path, deletes the attribute attr of the object at obj ("/": the root
 * group), or the link obj itself when attr is NULL; fails the test when it cannot. */
void kd_test_h5_delete(const char *path, const char *obj, const char *attr);

/* Writes a valid dataset of n rows to kd_test_tmp_path(name) and returns that path. u8: uint8
 * inputs of 1x8x8, x = i*7 (mod 256) over the file, normalised with scale 1/255, mean 0.5,
 * std 0.25; else float32 inputs of 4 features, x = i*0.5, scale 1, mean 0, std 1. Labels
 * i % C of C classes. */
const char *kd_test_write_dataset(const char *name, int64_t n, int C, int u8);

/* Asserts kd_dataset_open refuses path, leaving every handle invalid, with a message naming
 * the path and containing needle1 and needle2 (either may be NULL: not checked, nor the rest). */
void kd_test_expect_open_fails(const char *path, const char *needle1, const char *needle2);

/* n row indices in [0, num_rows) from the xorshift64 *rng, with duplicates (rows[1] = rows[0],
 * rows[n/2] = rows[3]) and both ends (rows[2] = num_rows - 1, rows[5] = 0); n >= 6. */
void kd_test_random_rows(int64_t *rows, size_t n, int64_t num_rows, uint64_t *rng);

#endif
