/* Runtime: device selection, the embedded program, kernel launches, the binary round trip. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/program.h"
#include "testutil.h"

static void fill_kernel_writes_value(void **state) {
  (void)state;
  kd_device *dev = kd_test_device();
  cl_mem buf = kd_test_buffer(100, NULL);
  size_t g = 37, l = KD_WG;
  KD_OK(KD_RUN(dev, "kd_fill", 1, &g, &l, err, KD_MEM(buf), KD_UINT(5), KD_UINT(37),
               KD_FLOAT(2.5f)));
  float host[100];
  kd_test_read(buf, 0, 100, host);
  for (int i = 0; i < 100; i++) assert_true(host[i] == ((i >= 5 && i < 42) ? 2.5f : 0.0f));
  clReleaseMemObject(buf);
}

static void unknown_selector_fails_with_list(void **state) {
  (void)state;
  kd_device_info info;
  kd_error err = {{0}};
  assert_int_equal(kd_device_select("no-such-device-xyz", &info, &err), -1);
  assert_non_null(strstr(err.msg, "no-such-device-xyz"));
  assert_non_null(strstr(err.msg, "available"));
  assert_int_equal(kd_device_select("99", &info, &err), -1);
  assert_int_equal(kd_device_select("cpu", &info, &err), 0);
  assert_true(info.type & CL_DEVICE_TYPE_CPU);
}

static void unknown_kernel_is_an_error(void **state) {
  (void)state;
  size_t g = 1, l = 1;
  kd_error err = {{0}};
  assert_int_equal(kd_run(kd_test_device(), "no_such_kernel", 1, &g, &l, 0, NULL, &err), -1);
  assert_non_null(strstr(err.msg, "no_such_kernel"));
}

static void binary_round_trip_runs(void **state) {
  (void)state;
  char path[] = "/tmp/kdcl-binary-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  KD_OK(kd_device_save_binary(kd_test_device(), path, err));
  kd_device dev2;
  KD_OK(kd_device_open(&dev2, NULL, path, 0, err));
  assert_true(dev2.num_kernels == kd_test_device()->num_kernels);
  cl_int rc;
  cl_mem buf = clCreateBuffer(dev2.context, CL_MEM_READ_WRITE, 4 * sizeof(float), NULL, &rc);
  size_t g = 4, l = 4;
  KD_OK(KD_RUN(&dev2, "kd_fill", 1, &g, &l, err, KD_MEM(buf), KD_UINT(0), KD_UINT(4),
               KD_FLOAT(-1.0f)));
  float host[4];
  KD_OK(kd_read_floats(&dev2, buf, 0, 4, host, err));
  for (int i = 0; i < 4; i++) assert_true(host[i] == -1.0f);
  clReleaseMemObject(buf);
  kd_device_close(&dev2);

  /* A file that is not a program binary is refused with a message naming it. */
  kd_test_write_file(path, "wb", "not a binary");
  kd_error err = {{0}};
  assert_int_equal(kd_device_open(&dev2, NULL, path, 0, &err), -1);
  assert_non_null(strstr(err.msg, path));
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fill_kernel_writes_value),
      cmocka_unit_test(unknown_selector_fails_with_list),
      cmocka_unit_test(unknown_kernel_is_an_error),
      cmocka_unit_test(binary_round_trip_runs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
