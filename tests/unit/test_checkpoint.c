/* Checkpoints: bit-exact round trip, crash safety of the atomic write, refusals, --init tensor
 * reads; logits files. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/checkpoint.h"
#include "data/h5util.h"
#include "data/logits.h"
#include "h5testutil.h"

static int setup(void **state) {
  (void)state;
  return kd_test_h5_setup("checkpoint");
}

static void set_tensor(kd_named_tensor *t, const char *name, int ndim, const int64_t *shape,
                       uint64_t seed) {
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  t->ndim = ndim;
  size_t n = 1;
  for (int i = 0; i < ndim; i++) n *= (size_t)(t->shape[i] = shape[i]);
  t->data = malloc((n ? n : 1) * sizeof(float));
  kd_test_fill_uniform(t->data, n, -1.0f, 1.0f, seed);
}

/* A checkpoint with awkward contents: name order != write order, a 4-D conv weight, a scalar,
 * special float values, a seed above INT64_MAX, non-ASCII JSON. Owned by the caller. */
static void make_checkpoint(kd_checkpoint *ck, int variant) {
  memset(ck, 0, sizeof *ck);
  ck->model_config = strdup("{\"name\": \"mlp-\xc3\xa9t\xc3\xa9\", \"input\": [1, 28, 28]}");
  ck->train_config = strdup("{\"lr\": 0.01, \"optimizer\": \"adamw\"}");
  ck->num_model = 5;
  ck->model = calloc(5, sizeof *ck->model);
  const int64_t w1[2] = {10, 20}, b1[1] = {10}, conv[4] = {4, 3, 3, 3}, w10[2] = {3, 10};
  set_tensor(&ck->model[0], "layers.1.weight", 2, w1, 1 + (uint64_t)variant);
  set_tensor(&ck->model[1], "layers.1.bias", 1, b1, 2);
  set_tensor(&ck->model[2], "layers.10.weight", 2, w10, 3);
  set_tensor(&ck->model[3], "layers.2.weight", 4, conv, 4);
  set_tensor(&ck->model[4], "layers.3.num_batches_tracked", 0, NULL, 5);
  ck->model[0].data[0] = -0.0f;
  ck->model[0].data[1] = 1e-42f;
  ck->model[0].data[2] = INFINITY;
  ck->model[0].data[3] = NAN;
  ck->model[4].data[0] = 1234.0f;
  snprintf(ck->optimizer_type, sizeof ck->optimizer_type, "adamw");
  ck->lr = 1e-3, ck->momentum = 0.9, ck->dampening = 0.0, ck->weight_decay = 0.01;
  ck->beta1 = 0.9, ck->beta2 = 0.999, ck->eps = 1e-8, ck->nesterov = 1;
  ck->num_optim_state = 4;
  ck->optim_state = calloc(4, sizeof *ck->optim_state);
  set_tensor(&ck->optim_state[0], "layers.1.weight/exp_avg", 2, w1, 11);
  set_tensor(&ck->optim_state[1], "layers.1.weight/exp_avg_sq", 2, w1, 12);
  set_tensor(&ck->optim_state[2], "layers.10.weight/exp_avg", 2, w10, 13);
  set_tensor(&ck->optim_state[3], "layers.10.weight/exp_avg_sq", 2, w10, 14);
  ck->step = 123456789012LL + variant;
  ck->epoch = 7;
  ck->data_cursor = 4242;
  ck->seed = 0xFEDCBA9876543210ULL;
}

/* Frees what make_checkpoint allocated (same layout as kd_checkpoint_read's). */
static void free_made(kd_checkpoint *ck) { kd_checkpoint_free(ck); }

static size_t numel(const kd_named_tensor *t) {
  size_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
  return n;
}

static void assert_tensors_equal(const kd_named_tensor *a, const kd_named_tensor *b, int n) {
  for (int i = 0; i < n; i++) {
    assert_string_equal(a[i].name, b[i].name);
    assert_int_equal(a[i].ndim, b[i].ndim);
    for (int d = 0; d < a[i].ndim; d++) assert_int_equal(a[i].shape[d], b[i].shape[d]);
    /* Bit-exact, NaN included. */
    assert_memory_equal(a[i].data, b[i].data, numel(&a[i]) * sizeof(float));
  }
}

static void assert_checkpoints_equal(const kd_checkpoint *a, const kd_checkpoint *b) {
  assert_string_equal(a->model_config, b->model_config);
  assert_string_equal(a->train_config, b->train_config);
  assert_int_equal(a->num_model, b->num_model);
  assert_tensors_equal(a->model, b->model, a->num_model);
  assert_string_equal(a->optimizer_type, b->optimizer_type);
  assert_true(a->lr == b->lr && a->momentum == b->momentum && a->dampening == b->dampening &&
              a->weight_decay == b->weight_decay && a->beta1 == b->beta1 && a->beta2 == b->beta2 &&
              a->eps == b->eps && a->nesterov == b->nesterov);
  assert_int_equal(a->num_optim_state, b->num_optim_state);
  assert_tensors_equal(a->optim_state, b->optim_state, a->num_optim_state);
  assert_true(a->step == b->step && a->epoch == b->epoch && a->data_cursor == b->data_cursor);
  assert_true(a->seed == b->seed);
}

static void round_trip_is_bit_exact(void **state) {
  (void)state;
  kd_checkpoint ck, back;
  make_checkpoint(&ck, 0);
  const char *path = kd_test_tmp_path("ck.h5");
  KD_OK(kd_checkpoint_write(path, &ck, err));
  assert_false(kd_test_exists(kd_test_tmp_path("ck.h5.tmp")));
  KD_OK(kd_checkpoint_read(path, &back, err));
  assert_checkpoints_equal(&ck, &back);
  kd_checkpoint_free(&back);
  kd_checkpoint_free(&back); /* twice is harmless */

  /* The file layout the design promises: little-endian f32 contiguous tensors, i64/u64
   * scalars, scalar VL UTF-8 strings, complete=1 scalar int32. */
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, "/model/layers.2.weight", H5P_DEFAULT);
  hid_t t = H5Dget_type(d), dcpl = H5Dget_create_plist(d);
  assert_true(H5Tequal(t, H5T_IEEE_F32LE) > 0);
  assert_int_equal(H5Pget_layout(dcpl), H5D_CONTIGUOUS);
  H5Tclose(t), H5Pclose(dcpl), H5Dclose(d);
  d = H5Dopen2(f, "/rng/seed", H5P_DEFAULT);
  t = H5Dget_type(d);
  assert_true(H5Tequal(t, H5T_STD_U64LE) > 0);
  H5Tclose(t), H5Dclose(d);
  d = H5Dopen2(f, "/train/step", H5P_DEFAULT);
  t = H5Dget_type(d);
  assert_true(H5Tequal(t, H5T_STD_I64LE) > 0);
  H5Tclose(t), H5Dclose(d);
  d = H5Dopen2(f, "/meta/model_config", H5P_DEFAULT);
  t = H5Dget_type(d);
  assert_true(H5Tis_variable_str(t) > 0 && H5Tget_cset(t) == H5T_CSET_UTF8);
  H5Tclose(t), H5Dclose(d);
  hid_t a = H5Aopen(f, "complete", H5P_DEFAULT);
  hid_t s = H5Aget_space(a);
  assert_int_equal(H5Sget_simple_extent_type(s), H5S_SCALAR);
  H5Sclose(s), H5Aclose(a);
  H5Fclose(f);
  free_made(&ck);
}

static void failed_write_leaves_old_checkpoint(void **state) {
  (void)state;
  kd_checkpoint old, bad, back;
  make_checkpoint(&old, 0);
  const char *path = kd_test_tmp_path("keep.h5");
  KD_OK(kd_checkpoint_write(path, &old, err));
  struct stat st0;
  assert_int_equal(stat(path, &st0), 0);

  /* Fails midway: the second tensor of the same name cannot be created after the first
   * was written into keep.h5.tmp. */
  make_checkpoint(&bad, 1);
  snprintf(bad.model[3].name, sizeof bad.model[3].name, "%s", bad.model[0].name);
  kd_error e = {{0}};
  assert_int_equal(kd_checkpoint_write(path, &bad, &e), -1);
  print_message("refused: %s\n", e.msg);
  kd_test_assert_msg_has(e.msg, path, "layers.1.weight", NULL);
  assert_false(kd_test_exists(kd_test_tmp_path("keep.h5.tmp")));
  KD_OK(kd_checkpoint_read(path, &back, err));
  assert_checkpoints_equal(&old, &back);
  kd_checkpoint_free(&back);

  /* A directory that does not exist: named, nothing written. */
  assert_int_equal(kd_checkpoint_write("/nonexistent-kdcl-dir/ck.h5", &old, &e), -1);
  print_message("refused: %s\n", e.msg);
  kd_test_assert_msg_has(e.msg, "/nonexistent-kdcl-dir/ck.h5",
                         "directory /nonexistent-kdcl-dir does not exist", NULL);

  /* A stale .tmp from an earlier crash is simply replaced. */
  kd_test_write_file(kd_test_tmp_path("keep.h5.tmp"), "w", "garbage from a crash");
  KD_OK(kd_checkpoint_write(path, &old, err));
  assert_false(kd_test_exists(kd_test_tmp_path("keep.h5.tmp")));
  KD_OK(kd_checkpoint_read(path, &back, err));
  assert_checkpoints_equal(&old, &back);
  kd_checkpoint_free(&back);

  /* Bad names are refused before anything is written. */
  snprintf(bad.model[3].name, sizeof bad.model[3].name, "a/b");
  assert_int_equal(kd_checkpoint_write(path, &bad, &e), -1);
  kd_test_assert_msg_has(e.msg, "a/b", NULL);
  snprintf(bad.model[3].name, sizeof bad.model[3].name, "ok");
  snprintf(bad.optim_state[0].name, sizeof bad.optim_state[0].name, "noslot");
  assert_int_equal(kd_checkpoint_write(path, &bad, &e), -1);
  kd_test_assert_msg_has(e.msg, "noslot", "<param>/<slot>", NULL);
  free_made(&old);
  free_made(&bad);
}

static void read_refusals(void **state) {
  (void)state;
  kd_checkpoint ck, back;
  kd_error e = {{0}};
  make_checkpoint(&ck, 0);
  const char *path = kd_test_tmp_path("refuse.h5");

  /* No complete marker: an interrupted write. */
  KD_OK(kd_checkpoint_write(path, &ck, err));
  kd_test_h5_delete(path, "/", "complete");
  assert_int_equal(kd_checkpoint_read(path, &back, &e), -1);
  print_message("refused: %s\n", e.msg);
  kd_test_assert_msg_has(e.msg, path, "incomplete checkpoint", "complete", NULL);
  assert_null(back.model);

  /* complete = 0. */
  hid_t f = kd_test_h5_open_rw(path);
  assert_int_equal(kd_h5_write_attr_int(f, "complete", 0, &e), 0);
  H5Fclose(f);
  assert_int_equal(kd_checkpoint_read(path, &back, &e), -1);
  kd_test_assert_msg_has(e.msg, path, "incomplete checkpoint", NULL);

  /* Wrong format. */
  KD_OK(kd_checkpoint_write(path, &ck, err));
  f = kd_test_h5_open_rw(path);
  assert_int_equal(kd_h5_write_attr_string(f, "format", "kdcl-dataset", &e), 0);
  H5Fclose(f);
  assert_int_equal(kd_checkpoint_read(path, &back, &e), -1);
  print_message("refused: %s\n", e.msg);
  kd_test_assert_msg_has(e.msg, path, "format is \"kdcl-dataset\"", "\"kdcl-checkpoint\"", NULL);

  /* No format at all (some other HDF5 file). */
  kd_test_h5_delete(path, "/", "format");
  assert_int_equal(kd_checkpoint_read(path, &back, &e), -1);
  print_message("refused: %s\n", e.msg);
  kd_test_assert_msg_has(e.msg, path, "not a kdcl-checkpoint file", NULL);

  /* A newer major version. */
  KD_OK(kd_checkpoint_write(path, &ck, err));
  f = kd_test_h5_open_rw(path);
  int32_t v[2] = {2, 0};
  assert_int_equal(kd_h5_write_attr_ints(f, "format_version", v, 2, &e), 0);
  H5Fclose(f);
  assert_int_equal(kd_checkpoint_read(path, &back, &e), -1);
  print_message("refused: %s\n", e.msg);
  kd_test_assert_msg_has(e.msg, path, "format_version is [2, 0]", NULL);

  /* Missing, not HDF5, truncated. */
  assert_int_equal(kd_checkpoint_read(kd_test_tmp_path("missing.h5"), &back, &e), -1);
  kd_test_assert_msg_has(e.msg, "missing.h5: no such file", NULL);
  const char *text = kd_test_tmp_path("text.h5");
  kd_test_write_file(text, "w", "{\"not\": \"hdf5\"}\n");
  assert_int_equal(kd_checkpoint_read(text, &back, &e), -1);
  kd_test_assert_msg_has(e.msg, text, "not an HDF5 file", NULL);
  KD_OK(kd_checkpoint_write(path, &ck, err));
  kd_test_truncate_to_half(path);
  assert_int_equal(kd_checkpoint_read(path, &back, &e), -1);
  print_message("refused: %s\n", e.msg);
  kd_test_assert_msg_has(e.msg, path, "truncated HDF5 file", NULL);
  free_made(&ck);
}

static void model_tensor_for_init(void **state) {
  (void)state;
  kd_checkpoint ck;
  make_checkpoint(&ck, 0);
  const char *path = kd_test_tmp_path("init.h5");
  KD_OK(kd_checkpoint_write(path, &ck, err));
  hid_t f;
  KD_OK(kd_h5_open_read(path, &f, err));
  float out[200];
  const int64_t good[2] = {10, 20}, wrong[2] = {10, 30};
  KD_OK(kd_h5_read_model_tensor(f, "init.h5", "layers.1.weight", 2, good, out, err));
  assert_memory_equal(out, ck.model[0].data, sizeof out);
  kd_error e = {{0}};
  assert_int_equal(kd_h5_read_model_tensor(f, "init.h5", "layers.1.weight", 2, wrong, out, &e), -1);
  assert_string_equal(
      e.msg, "init.h5: /model/layers.1.weight has shape [10, 20] but the model needs [10, 30]");
  assert_int_equal(kd_h5_read_model_tensor(f, "init.h5", "layers.1.weight", 1, wrong, out, &e), -1);
  kd_test_assert_msg_has(e.msg, "has shape [10, 20] but the model needs [10]", NULL);
  assert_int_equal(kd_h5_read_model_tensor(f, "init.h5", "layers.9.weight", 2, wrong, out, &e), -1);
  print_message("refused: %s\n", e.msg);
  kd_test_assert_msg_has(e.msg, "init.h5", "has no /model/layers.9.weight", "[10, 30]", NULL);
  H5Fclose(f);

  /* A file as h5py writes a PyTorch state_dict: float64 tensors, int64 counters, no attrs. */
  const char *torch = kd_test_tmp_path("torch.h5");
  f = H5Fcreate(torch, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  double w[3][2] = {{1.5, -2.25}, {3.0, 0.1}, {-1e-3, 7.0}};
  hsize_t dims[2] = {3, 2};
  hid_t space = H5Screate_simple(2, dims, NULL);
  hid_t d = H5Dcreate2(f, "/model/layers.0.weight", H5T_IEEE_F64LE, space, lcpl, H5P_DEFAULT,
                       H5P_DEFAULT);
  H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, w);
  H5Dclose(d);
  H5Sclose(space);
  space = H5Screate(H5S_SCALAR);
  int64_t nbt = 5;
  d = H5Dcreate2(f, "/model/layers.1.num_batches_tracked", H5T_STD_I64LE, space, lcpl, H5P_DEFAULT,
                 H5P_DEFAULT);
  H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &nbt);
  H5Dclose(d);
  H5Sclose(space);
  H5Pclose(lcpl);
  H5Fclose(f);
  KD_OK(kd_h5_open_read(torch, &f, err));
  const int64_t shape[2] = {3, 2};
  KD_OK(kd_h5_read_model_tensor(f, "torch.h5", "layers.0.weight", 2, shape, out, err));
  for (int i = 0; i < 6; i++) assert_true(out[i] == (float)w[i / 2][i % 2]);
  assert_int_equal(
      kd_h5_read_model_tensor(f, "torch.h5", "layers.1.num_batches_tracked", 0, NULL, out, &e), -1);
  kd_test_assert_msg_has(e.msg, "torch.h5: /model/layers.1.num_batches_tracked has type int64",
                         NULL);
  H5Fclose(f);
  free_made(&ck);
}

static void logits_file(void **state) {
  (void)state;
  const char *path = kd_test_tmp_path("logits.h5");
  float logits[3 * 4];
  kd_test_fill_uniform(logits, 12, -5, 5, 3);
  KD_OK(kd_logits_write(path, logits, 3, 4, err));
  hid_t f;
  KD_OK(kd_h5_open_read(path, &f, err));
  char s[64];
  kd_error e;
  assert_int_equal(kd_h5_read_attr_string(f, "format", path, s, sizeof s, &e), 0);
  assert_string_equal(s, "kdcl-logits");
  assert_int_equal(kd_h5_check_format(f, path, "kdcl-logits", 1, &e), 0);
  hid_t d = H5Dopen2(f, "/logits", H5P_DEFAULT);
  int64_t dims[4];
  int nd;
  assert_int_equal(kd_h5_dataset_shape(d, "logits", 4, &nd, dims, &e), 0);
  assert_true(nd == 2 && dims[0] == 3 && dims[1] == 4);
  float back[12];
  assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) >= 0);
  assert_memory_equal(back, logits, sizeof back);
  H5Dclose(d);
  H5Fclose(f);
  assert_int_equal(kd_logits_write(path, logits, 3, 0, &e), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(round_trip_is_bit_exact),
      cmocka_unit_test(failed_write_leaves_old_checkpoint),
      cmocka_unit_test(read_refusals),
      cmocka_unit_test(model_tensor_for_init),
      cmocka_unit_test(logits_file),
  };
  return cmocka_run_group_tests(tests, setup, kd_test_h5_teardown);
}
