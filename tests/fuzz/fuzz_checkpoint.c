/* Fuzz target: the checkpoint reader (kd_checkpoint_read) on arbitrary file contents, and the
 * model spec a checkpoint carries. */
#include <string.h>

#include <hdf5.h>

#include "data/checkpoint.h"
#include "fuzz.h"
#include "nn/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = kd_fuzz_write_file(data, size);
  if (!path) return 0;
  kd_checkpoint ck;
  kd_error err;
  if (kd_checkpoint_read(path, &ck, &err) == 0 && ck.model_config) {
    kd_model m;
    if (kd_model_parse(&m, ck.model_config, "fuzz: /meta/model_config", &err) == 0)
      kd_model_free(&m);
  }
  kd_checkpoint_free(&ck);
  /* libhdf5's free lists keep every block it ever freed (huge ones too, for files that
   * claim huge objects): give them back, or the fuzzer's RSS limit counts them. */
  H5garbage_collect();
  return 0;
}
