/* Checks on file paths made before long work starts: an output must be writable where it is
 * asked for, and must not be one of the inputs. */
#ifndef KD_PATHS_H
#define KD_PATHS_H

#include "runtime/error.h"

/* 1 when a and b name the same existing file (same device and inode), else 0. */
int kd_same_file(const char *a, const char *b);

/* Fails unless `path` (given as `flag`) can be created or replaced: its directory exists and is
 * writable, and path itself, if it exists, is a regular file (not a directory, device, FIFO or
 * socket, which the rename that writes outputs would replace). */
int kd_check_output_path(const char *flag, const char *path, kd_error *err);

/* Fails when the output `out` (flag out_flag) is the same file as any of the n inputs (NULL
 * entries are skipped); inputs[i] was given as in_flags[i]. */
int kd_check_not_input(const char *out_flag, const char *out, int n, const char *const *in_flags,
                       const char *const *inputs, kd_error *err);

#endif
