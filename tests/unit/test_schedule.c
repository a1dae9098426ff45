/* Learning-rate schedules: warm-up, step decay by epochs, cosine to zero; and the host RNG's
 * epoch order (a permutation, repeatable, different per epoch). */
#include <math.h>
#include <stdlib.h>

#include "testutil.h"
#include "train/rng.h"
#include "train/schedule.h"

static void constant_with_warmup(void **state) {
  (void)state;
  kd_schedule s = {KD_LR_CONSTANT, 0.1, 4, 100, 10, 1, 0.1};
  assert_true(fabs(kd_schedule_lr(&s, 1) - 0.025) < 1e-12);
  assert_true(fabs(kd_schedule_lr(&s, 4) - 0.1) < 1e-12);
  assert_true(fabs(kd_schedule_lr(&s, 77) - 0.1) < 1e-12);
}

static void step_decays_every_n_epochs(void **state) {
  (void)state;
  kd_schedule s = {KD_LR_STEP, 1.0, 0, 100, 10, 2, 0.5}; /* 10 steps an epoch, x0.5 per 2 */
  assert_true(fabs(kd_schedule_lr(&s, 1) - 1.0) < 1e-12);
  assert_true(fabs(kd_schedule_lr(&s, 20) - 1.0) < 1e-12);  /* last step of epoch 2 */
  assert_true(fabs(kd_schedule_lr(&s, 21) - 0.5) < 1e-12);  /* first of epoch 3 */
  assert_true(fabs(kd_schedule_lr(&s, 41) - 0.25) < 1e-12);
}

static void cosine_reaches_zero(void **state) {
  (void)state;
  kd_schedule s = {KD_LR_COSINE, 2.0, 10, 110, 10, 1, 0.1};
  assert_true(fabs(kd_schedule_lr(&s, 5) - 1.0) < 1e-12);    /* warm-up */
  assert_true(fabs(kd_schedule_lr(&s, 10) - 2.0) < 1e-12);   /* peak */
  assert_true(fabs(kd_schedule_lr(&s, 60) - 1.0) < 1e-12);   /* half way: cos(pi/2) */
  assert_true(fabs(kd_schedule_lr(&s, 110)) < 1e-12);        /* end */
  assert_true(fabs(kd_schedule_lr(&s, 85) - (1 + cos(3.14159265358979323846 * 0.75))) < 1e-12);
}

static void epoch_order_is_a_repeatable_permutation(void **state) {
  (void)state;
  enum { N = 1000 };
  int64_t a[N], b[N], c[N];
  kd_epoch_order(a, N, 7, 3, 1);
  kd_epoch_order(b, N, 7, 3, 1);
  kd_epoch_order(c, N, 7, 4, 1);
  int seen[N] = {0}, same_as_next_epoch = 0, moved = 0;
  for (int i = 0; i < N; i++) {
    assert_true(a[i] >= 0 && a[i] < N);
    seen[a[i]]++;
    assert_int_equal(a[i], b[i]);
    same_as_next_epoch += a[i] == c[i];
    moved += a[i] != i;
  }
  for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);
  assert_true(same_as_next_epoch < 20 && moved > 900);
  kd_epoch_order(a, N, 7, 3, 0);
  for (int i = 0; i < N; i++) assert_int_equal(a[i], i);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(constant_with_warmup),
      cmocka_unit_test(step_decays_every_n_epochs),
      cmocka_unit_test(cosine_reaches_zero),
      cmocka_unit_test(epoch_order_is_a_repeatable_permutation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
