/* The training loader (host/train/loader.c): a set held in host memory and a set streamed
 * through windows (several per epoch, and a batch at a time) hand out the same batches as
 * direct reads of their rows, for orders with repeated rows, a start mid-order (a resumed
 * epoch), a short last batch, and a new order begun before the old one is used up. */
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "h5testutil.h"
#include "train/loader.h"

enum { ROWS = 40000, CLASSES = 10, BATCH = 100 };

static const char *set_path;

static int setup(void **state) {
  (void)state;
  if (kd_test_h5_setup("loader")) return -1;
  /* uint8 1x8x8 rows: 68 host bytes each, 2.6 MiB in all */
  set_path = kd_test_write_dataset("set.h5", ROWS, CLASSES, 1);
  return 0;
}

/* Takes every batch of order[start..len) from the loader and compares it with a direct read
 * of its rows; `stop_after` batches (0: all) end the check early. Returns batches seen. */
static int check_batches(kd_loader *l, kd_dataset *direct, const int64_t *order, int64_t len,
                         int64_t start, int stop_after) {
  unsigned char want_x[BATCH * 64];
  int32_t want_y[BATCH];
  int64_t pos = start;
  int seen = 0;
  kd_batch *prev = NULL;
  for (;;) {
    kd_batch *b;
    KD_OK(kd_loader_next(l, &b, err));
    if (prev) kd_loader_release(l, prev);
    prev = b;
    if (!b) break;
    size_t n = (size_t)(len - pos < BATCH ? len - pos : BATCH);
    assert_int_equal(b->first, pos);
    assert_int_equal(b->n, n);
    assert_memory_equal(b->rows, order + pos, n * sizeof(int64_t));
    KD_OK(kd_dataset_read_rows(direct, order + pos, n, want_x, want_y, err));
    assert_memory_equal(b->x, want_x, n * 64);
    assert_memory_equal(b->y, want_y, n * sizeof(int32_t));
    pos += (int64_t)n;
    if (++seen == stop_after) break;
  }
  if (prev) kd_loader_release(l, prev);
  if (!stop_after) assert_int_equal(pos, len);
  return seen;
}

/* One loader under KDCL_DATA_MEMORY=memory: expect it held (or streamed through windows of
 * expect_window_rows), then two orders. */
static void run_loader(const char *memory, int expect_resident, size_t expect_window_rows) {
  kd_dataset ds, direct;
  setenv("KDCL_DATA_MEMORY", memory, 1);
  KD_OK(kd_dataset_open(&ds, set_path, err));
  KD_OK(kd_dataset_open(&direct, set_path, err));
  kd_loader l;
  kd_error open_err = {{0}};
  int rc = kd_loader_open(&l, &ds, BATCH, 0, NULL, &open_err);
  unsetenv("KDCL_DATA_MEMORY");
  if (rc) fail_msg("kd_loader_open: %s", open_err.msg);
  assert_int_equal(l.resident, expect_resident);
  assert_int_equal(l.on_device, 0);
  assert_int_equal(l.window_rows, expect_window_rows);
  int64_t *order = malloc(ROWS * sizeof *order);
  assert_non_null(order);
  uint64_t rng = 99;
  kd_test_random_rows(order, ROWS, ROWS, &rng); /* repeats rows, hits both ends */
  order[ROWS - 1] = order[ROWS - 2];
  /* 123 batches in, a new order: windows read for the old one are dropped */
  kd_loader_start(&l, order, ROWS, 0);
  assert_int_equal(check_batches(&l, &direct, order, ROWS, 0, 123), 123);
  for (int64_t i = 0; i < ROWS; i++) order[i] = (order[i] * 7 + 3) % ROWS;
  /* a resumed epoch: the order from position 3700, a short last batch (39950 rows) */
  kd_loader_start(&l, order, ROWS - 50, 3700);
  check_batches(&l, &direct, order, ROWS - 50, 3700, 0);
  kd_loader_close(&l);
  kd_dataset_close(&ds);
  kd_dataset_close(&direct);
  free(order);
}

static void held_in_memory(void **state) {
  (void)state;
  run_loader("64", 1, 0);
}

static void streamed_through_windows(void **state) {
  (void)state;
  /* 1 MiB: windows of 1,300 rows (an eighth of the budget over 68 + 28 bytes a row, in whole
   * batches), 31 of them an epoch */
  run_loader("1", 0, 1300);
}

static void streamed_a_batch_at_a_time(void **state) {
  (void)state;
  run_loader("0", 0, BATCH);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(held_in_memory),
      cmocka_unit_test(streamed_through_windows),
      cmocka_unit_test(streamed_a_batch_at_a_time),
  };
  return cmocka_run_group_tests(tests, setup, kd_test_h5_teardown);
}
