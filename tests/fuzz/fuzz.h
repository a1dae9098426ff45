/* libFuzzer entry points shared by the fuzz builds (clang -fsanitize=fuzzer) and the
 * regression runner (regress_main.c, any compiler), which feeds saved inputs to the same code. */
#ifndef KD_FUZZ_H
#define KD_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes data to this process's scratch file (under $TMPDIR, default /tmp) and returns its
 * path, or NULL when it cannot be written. The readers under test take paths, not memory. */
const char *kd_fuzz_write_file(const uint8_t *data, size_t size);

#endif
