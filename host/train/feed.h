/* A batch from the loader onto the device, as a training step takes it
 * (host/train/run.c, and `kdcl bench step --data`, which times what run.c
 * enqueues). */
#ifndef KD_FEED_H
#define KD_FEED_H

#include "train/loader.h"
#include "train/trainer.h"

/* Enqueues batch b's inputs (normalised with the dataset's scale/mean/std),
 * labels and, when the loader reads them, teacher rows (dense logits or top-k)
 * into t's slots for them; with online (a teacher run on the device; may be
 * NULL) its input too. A set held on the device: one gather launch per trainer
 * and *upload = NULL. A streamed set: non-blocking writes from b's host memory,
 * and *upload is the event after which b's slot may be reused (set, or NULL,
 * also when a later enqueue fails). */
int kd_feed_batch(kd_loader *l, const kd_batch *b, kd_trainer *t, kd_trainer *online,
                  cl_event *upload, kd_error *err);

/* Gives b (may be NULL) back to the loader once *upload (may be NULL) has
 * completed, and releases the event: *upload is NULL after. */
void kd_feed_release(kd_loader *l, kd_batch *b, cl_event *upload);

#endif
