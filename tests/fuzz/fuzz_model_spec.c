/* Fuzz target: the model-spec parser (kd_model_parse) on arbitrary text. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "nn/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  kd_model m;
  kd_error err;
  if (kd_model_parse(&m, text, "fuzz.json", &err) == 0) {
    /* What a parsed model promises the rest of kdcl: sizes that multiply without overflow. */
    (void)kd_model_count_params(&m);
    kd_model_free(&m);
  }
  free(text);
  return 0;
}
