/* Feeding a step: a gather on the device, or uploads from the loader's host
 * slots. */
#include "train/feed.h"

/* The set is on the device: one launch per trainer, no host memory involved. */
static int gather_batch(kd_loader *l, const kd_batch *b, kd_trainer *t, kd_trainer *online,
                        kd_error *err) {
  const kd_dataset *ds = l->ds;
  const kd_device_set *s = &l->set;
  kd_ref none = kd_at(NULL, 0), teacher = none, teacher_idx = none;
  if (s->teacher_cols) {
    teacher = kd_at(t->work.buf, s->topk ? t->topk_logp : t->teacher_logits);
    if (s->topk) teacher_idx = kd_at(t->topk_idx, 0);
  }
  if (kd_device_set_gather(s, b->first, b->n, kd_at(t->acts.buf, t->act_in), ds->scale, ds->mean,
                           ds->std, kd_at(t->labels, 0), teacher, teacher_idx, err))
    return -1;
  return online ? kd_device_set_gather(s, b->first, b->n, kd_at(online->acts.buf, online->act_in),
                                       ds->scale, ds->mean, ds->std, none, none, none, err)
                : 0;
}

int kd_feed_batch(kd_loader *l, const kd_batch *b, kd_trainer *t, kd_trainer *online,
                  cl_event *upload, kd_error *err) {
  *upload = NULL;
  if (l->on_device) return gather_batch(l, b, t, online, err);
  const kd_dataset *ds = l->ds;
  cl_event later = NULL;
  if (kd_trainer_upload(t, b->x, ds->x_is_u8, b->y, b->n, ds->scale, ds->mean, ds->std, upload,
                        err))
    return -1;
  int rc = 0;
  if (l->with_teacher)
    rc = kd_trainer_upload_teacher(t, b->t_logits, b->t_idx, b->t_logp, b->n, &later, err);
  else if (online)
    rc = kd_trainer_upload(online, b->x, ds->x_is_u8, NULL, b->n, ds->scale, ds->mean, ds->std,
                           &later, err);
  /* In an in-order queue the last upload completes last: its event covers the
   * batch. */
  if (later) {
    clReleaseEvent(*upload);
    *upload = later;
  }
  return rc;
}

void kd_feed_release(kd_loader *l, kd_batch *b, cl_event *upload) {
  if (*upload) {
    clWaitForEvents(1, upload);
    clReleaseEvent(*upload);
    *upload = NULL;
  }
  if (b) kd_loader_release(l, b);
}
