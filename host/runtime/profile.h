/* The per-kernel time breakdown collected from OpenCL profiling events (--profile). */
#ifndef KD_PROFILE_H
#define KD_PROFILE_H

#include <stdio.h>

#include "runtime/device.h"

/* Prints one line per kernel that ran: launches, total device ms, share of the total, sorted
 * by time. Needs a device opened with profiling; kernels enqueued outside kd_run (CLBlast) are
 * not counted. */
void kd_profile_print(const kd_device *dev, FILE *out);

#endif
