/* A training run: sets up data, model and device, runs the epochs with prefetching, logs,
 * validates, and writes checkpoints (run_checkpoint.c) and a run directory's files. */
#include "train/run.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "data/checkpoint.h"
#include "data/dataset.h"
#include "data/h5util.h"
#include "data/paths.h"
#include "nn/gemm.h"
#include "nn/model.h"
#include "runtime/profile.h"
#include "train/evaluate.h"
#include "train/layer_profile.h"
#include "train/feed.h"
#include "train/loader.h"
#include "train/loss_ring.h"
#include "train/rng.h"
#include "train/resume_settings.h"
#include "train/run_dir.h"
#include "train/run_state.h"
#include "train/signals.h"
#include "train/state_dict.h"
#include "train/trainer.h"

void kd_train_options_defaults(kd_train_options *o) {
  memset(o, 0, sizeof *o);
  o->seed = 1;
  o->epochs = 10;
  o->batch = 128;
  o->shuffle = 1;
  o->log_every = 50;
  kd_optim_config_defaults(&o->optim, KD_OPT_ADAMW);
  o->schedule = KD_LR_CONSTANT;
  o->lr_gamma = 0.1;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Checks that a dataset fits the model: features per row and class count. */
static int check_data_fits(const kd_dataset *ds, const kd_model *m, kd_error *err) {
  /* Rows must have the model's shape; flat rows of the right size are reshaped (as PyTorch's
   * reshape would), [H, W] rows feed a [1, H, W] model. */
  int shape_ok = ds->sample_size == m->input_size;
  if (shape_ok && ds->sample_ndim > 1 && m->input_ndim == 3) {
    int off = ds->sample_ndim == 2 ? 1 : 0;
    shape_ok = ds->sample_ndim == 3 || m->input_shape[0] == 1;
    for (int d = 0; shape_ok && d < ds->sample_ndim; d++)
      shape_ok = ds->sample_shape[d] == m->input_shape[d + off];
  }
  if (!shape_ok) {
    char have[64] = "", want[64] = "";
    for (int d = 0; d < ds->sample_ndim; d++)
      snprintf(have + strlen(have), sizeof have - strlen(have), "%s%lld", d ? ", " : "",
               (long long)ds->sample_shape[d]);
    for (int d = 0; d < m->input_ndim; d++)
      snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "",
               (long long)m->input_shape[d]);
    return kd_fail(err, "%s: /inputs/x rows have shape [%s] but model '%s' takes input [%s]",
                   ds->path, have, m->name, want);
  }
  if ((size_t)ds->num_classes != m->num_classes)
    return kd_fail(err, "%s: /labels/y has num_classes %d but model '%s' outputs %zu classes",
                   ds->path, ds->num_classes, m->name, m->num_classes);
  if (kd_dataset_check_labels((kd_dataset *)ds, err)) return -1;
  return kd_dataset_check_inputs((kd_dataset *)ds, err);
}

static void log_record(kd_run_state *r, cJSON *rec) {
  if (!r->log) {
    cJSON_Delete(rec);
    return;
  }
  char *s = cJSON_PrintUnformatted(rec);
  if (s) {
    fprintf(r->log, "%s\n", s);
    fflush(r->log);
  }
  free(s);
  cJSON_Delete(rec);
}

static void format_eta(double seconds, char *buf, size_t len) {
  long s = seconds > 0 && seconds < 1e7 ? (long)seconds : 0;
  snprintf(buf, len, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
}

/* Enqueues one training step on batch b: its inputs and teacher rows (train/feed.h), [the
 * teacher's forward pass], forward, loss, backward, optimizer. *upload is the event after which
 * b's host memory may be reused (NULL: none to wait for). */
static int enqueue_step(kd_run_state *r, kd_batch *b, int64_t step, float lr, int loss_slot,
                        cl_event *upload, kd_error *err) {
  kd_trainer *t = &r->trainer;
  const kd_distill_config *cfg = r->o->distill ? &r->o->dcfg : NULL;
  kd_trainer *online = r->source == KD_SOURCE_DENSE_ONLINE ? &r->teacher.trainer : NULL;
  if (kd_feed_batch(&r->loader, b, t, online, upload, err)) return -1;
  /* the teacher in eval mode, without gradients */
  if (online && kd_trainer_forward(online, b->n, 0, 0, 0, err)) return -1;
  kd_ref online_logits = online ? kd_trainer_logits(online) : kd_at(NULL, 0);
  return kd_trainer_forward(t, b->n, 1, r->seed, step, err) ||
                 kd_trainer_loss(t, b->n, cfg, r->source, online_logits, loss_slot, err) ||
                 kd_trainer_backward(t, b->n, r->seed, step, err) ||
                 kd_trainer_optimizer_step(t, &r->optim, lr, step, err)
             ? -1
             : 0;
}

static void progress_line(kd_run_state *r, int64_t step, int64_t total_steps, double loss,
                          double rate, double eta) {
  char eta_s[32];
  format_eta(eta, eta_s, sizeof eta_s);
  fprintf(stderr, "\r\033[Kepoch %lld/%lld  step %lld/%lld  loss %.4f  %.0f samples/s  ETA %s",
          (long long)r->epoch + 1, (long long)r->o->epochs, (long long)step,
          (long long)total_steps, loss, rate, eta_s);
}

static void log_step(kd_run_state *r, const kd_loss_ring *ring, int64_t step, float lr,
                     double rate) {
  if (!r->log) return;
  cJSON *rec = cJSON_CreateObject();
  cJSON_AddStringToObject(rec, "event", "step");
  cJSON_AddNumberToObject(rec, "step", (double)step);
  cJSON_AddNumberToObject(rec, "epoch", (double)r->epoch + 1);
  if (isfinite(ring->last_loss)) {
    cJSON_AddNumberToObject(rec, "loss", ring->last_loss);
    if (ring->has_kd) {
      cJSON_AddNumberToObject(rec, "ce_loss", ring->last_ce);
      cJSON_AddNumberToObject(rec, "kd_loss", ring->last_kd);
    }
  }
  cJSON_AddNumberToObject(rec, "lr", lr);
  cJSON_AddNumberToObject(rec, "samples_per_s", rate);
  log_record(r, rec);
}

/* After an epoch: validation, the epoch record, the summary line, the checkpoint. */
static int finish_epoch(kd_run_state *r, const kd_loss_ring *ring, double elapsed,
                        kd_error *err) {
  const kd_train_options *o = r->o;
  double rows = ring->rows ? (double)ring->rows : NAN;
  double train_loss = ring->sum_loss / rows;
  kd_eval_result val = {0};
  if (r->val_open && kd_evaluate(&r->trainer, &r->val, 1, &val, NULL, err)) return -1;
  cJSON *rec = cJSON_CreateObject();
  cJSON_AddStringToObject(rec, "event", "epoch");
  cJSON_AddNumberToObject(rec, "step", (double)r->step);
  cJSON_AddNumberToObject(rec, "epoch", (double)r->epoch);
  if (isfinite(train_loss)) {
    cJSON_AddNumberToObject(rec, "train_loss", train_loss);
    if (ring->has_kd) {
      cJSON_AddNumberToObject(rec, "train_ce_loss", ring->sum_ce / rows);
      cJSON_AddNumberToObject(rec, "train_kd_loss", ring->sum_kd / rows);
    }
  }
  if (r->val_open) {
    cJSON_AddNumberToObject(rec, "val_accuracy", val.accuracy);
    cJSON_AddNumberToObject(rec, "val_loss", val.mean_loss);
    if (val.has_teacher) {
      cJSON_AddNumberToObject(rec, "val_teacher_agreement", val.agreement);
      cJSON_AddNumberToObject(rec, "val_teacher_kl", val.teacher_kl);
    }
  }
  cJSON_AddNumberToObject(rec, "elapsed_s", elapsed);
  log_record(r, rec);
  if (!o->quiet) {
    if (r->tty) fprintf(stderr, "\r\033[K");
    fprintf(stderr, "epoch %lld/%lld  train loss %.4f", (long long)r->epoch, (long long)o->epochs,
            train_loss);
    if (ring->has_kd)
      fprintf(stderr, " (ce %.4f, kd %.4f)", ring->sum_ce / rows, ring->sum_kd / rows);
    if (r->val_open)
      fprintf(stderr, "  val accuracy %.2f%%  val loss %.4f", 100 * val.accuracy, val.mean_loss);
    fprintf(stderr, "  (%.1f s)\n", elapsed);
  }
  if (r->val_open) {
    r->last_val = val;
    r->have_last_val = 1;
  }
  if (kd_run_save_checkpoint(r, o->out_path, err)) return -1;
  if (!o->run_dir) return 0;
  if (kd_run_dir_epoch_done(o->run_dir, r->epoch, o->keep, err)) return -1;
  if (r->val_open && val.accuracy > r->best_val_accuracy) {
    r->best_val_accuracy = val.accuracy;
    return kd_run_dir_mark_best(o->run_dir, r->epoch, r->step, val.accuracy, err);
  }
  return 0;
}

static void keep_epoch_sums(kd_run_state *r, const kd_loss_ring *ring) {
  r->epoch_sums[0] = (double)ring->rows;
  r->epoch_sums[1] = ring->sum_loss, r->epoch_sums[2] = ring->sum_ce;
  r->epoch_sums[3] = ring->sum_kd;
}

static int run_epochs(kd_run_state *r, kd_error *err) {
  const kd_train_options *o = r->o;
  int64_t N = r->train.num_rows, B = o->batch;
  int64_t steps_per_epoch = (N + B - 1) / B, total_steps = steps_per_epoch * o->epochs;
  kd_schedule sched = {o->schedule,    r->optim.lr,     o->warmup_steps, total_steps,
                       steps_per_epoch, o->lr_step_epochs ? o->lr_step_epochs : (o->epochs + 2) / 3,
                       o->lr_gamma};
  int has_kd = o->distill && r->source != KD_SOURCE_LABELS;
  kd_loss_ring ring;
  if (kd_loss_ring_init(&ring, &r->trainer, has_kd, has_kd ? o->dcfg.alpha : 1.0, err))
    return -1;
  int rc = 0;
  double t_start = now_seconds(), t_log = t_start;
  double seconds_before = r->train_seconds; /* earlier processes' share (from --resume) */
  int64_t rows_since_log = 0, start_step = r->step;

  while (rc == 0 && r->epoch < o->epochs && !kd_stop_requested()) {
    kd_epoch_order(r->order, N, r->seed, r->epoch, o->shuffle);
    kd_loader_start(&r->loader, r->order, N, r->cursor);
    kd_loss_ring_reset(&ring);
    if (r->cursor > 0) { /* resumed mid-epoch: the sums of the rows done before */
      ring.rows = (int64_t)r->epoch_sums[0];
      ring.sum_loss = r->epoch_sums[1], ring.sum_ce = r->epoch_sums[2];
      ring.sum_kd = r->epoch_sums[3];
    }
    kd_batch *prev = NULL;
    cl_event prev_upload = NULL;
    for (;;) {
      kd_batch *b;
      if (kd_loader_next(&r->loader, &b, err)) {
        rc = -1;
        break;
      }
      /* the device has copied the previous batch once its upload event is done */
      kd_feed_release(&r->loader, prev, &prev_upload);
      prev = NULL;
      if (!b) break;
      int64_t step = r->step + 1;
      float lr = (float)kd_schedule_lr(&sched, step);
      if ((rc = enqueue_step(r, b, step, lr, kd_loss_ring_slot(&ring), &prev_upload, err)) != 0 ||
          (rc = kd_loss_ring_enqueue(&ring, step, b->n, err)) != 0) {
        kd_feed_release(&r->loader, b, &prev_upload);
        break;
      }
      prev = b;
      r->step = step;
      r->cursor = b->first + (int64_t)b->n;
      rows_since_log += (int64_t)b->n;
      r->rows_trained += (int64_t)b->n;
      if (step % o->log_every == 0 || r->cursor == N) {
        /* Every log_every steps the host waits for this step, so the record holds its loss. */
        if ((rc = kd_loss_ring_drain_all(&ring, err)) != 0) break;
        double now = now_seconds();
        double rate = (double)rows_since_log / (now - t_log > 1e-9 ? now - t_log : 1e-9);
        double eta = (double)(total_steps - step) * (now - t_start) /
                     (double)(step - start_step > 0 ? step - start_step : 1);
        if (r->tty && !o->quiet) progress_line(r, step, total_steps, ring.last_loss, rate, eta);
        log_step(r, &ring, step, lr, rate);
        t_log = now;
        rows_since_log = 0;
      }
      if (o->checkpoint_every > 0 && step % o->checkpoint_every == 0 && r->cursor < N) {
        if ((rc = kd_loss_ring_drain_all(&ring, err)) != 0) break;
        keep_epoch_sums(r, &ring);
        r->train_seconds = seconds_before + (now_seconds() - t_start);
        if ((rc = kd_run_save_checkpoint(r, o->out_path, err)) != 0) break;
      }
      /* SIGINT/SIGTERM: this step is enqueued and stays; kd_train_run writes the checkpoint. */
      if (kd_stop_requested()) break;
    }
    kd_feed_release(&r->loader, prev, &prev_upload);
    if (rc == 0) rc = kd_loss_ring_drain_all(&ring, err);
    if (rc) break;
    if (kd_stop_requested() && r->cursor < N) { /* mid-epoch: the position stays */
      keep_epoch_sums(r, &ring);
      break;
    }
    /* The epoch is complete: the position moves to the start of the next one. */
    r->epoch++;
    r->cursor = 0;
    r->train_seconds = seconds_before + (now_seconds() - t_start); /* saved with the epoch */
    rc = finish_epoch(r, &ring, now_seconds() - t_start, err);
  }
  kd_loss_ring_free(&ring);
  r->train_seconds = seconds_before + (now_seconds() - t_start);
  return rc;
}

/* Decides where the distillation targets come from and checks they fit the model. */
static int setup_teacher(kd_run_state *r, kd_error *err) {
  const kd_train_options *o = r->o;
  r->source = KD_SOURCE_LABELS;
  if (!o->distill || o->dcfg.loss == KD_LOSS_CE) return 0;
  if (o->teacher_path) {
    if (kd_inference_open_on(&r->teacher, o->teacher_path, &r->dev, (size_t)o->batch, err))
      return kd_fail_context(err, "--teacher");
    const kd_model *tm = &r->teacher.model;
    if (tm->num_classes != r->model.num_classes)
      return kd_fail(err, "--teacher %s outputs %zu classes but the student '%s' outputs %zu",
                     o->teacher_path, tm->num_classes, r->model.name, r->model.num_classes);
    if (tm->input_size != r->model.input_size)
      return kd_fail(err, "--teacher %s takes %zu input features but the student takes %zu",
                     o->teacher_path, tm->input_size, r->model.input_size);
    r->source = KD_SOURCE_DENSE_ONLINE;
    return 0;
  }
  const kd_dataset *ds = &r->train;
  if (ds->teacher_kind == KD_TEACHER_NONE)
    return kd_fail(err,
                   "%s has no /teacher: write teacher outputs with 'kdcl label' (or 'kdcl import "
                   "teacher-topk'), or run a teacher online with --teacher CKPT.h5",
                   ds->path);
  if ((size_t)ds->teacher_classes != r->model.num_classes)
    return kd_fail(err, "%s: /teacher has %d classes but the student '%s' outputs %zu", ds->path,
                   ds->teacher_classes, r->model.name, r->model.num_classes);
  if (ds->teacher_kind == KD_TEACHER_TOPK && o->dcfg.loss == KD_LOSS_MSE)
    return kd_fail(err, "--loss mse needs dense teacher logits, but %s holds a top-k teacher",
                   ds->path);
  if (ds->teacher_kind == KD_TEACHER_TOPK && o->dcfg.loss == KD_LOSS_RKL &&
      o->dcfg.topk_missing == KD_TOPK_DROP)
    return kd_fail(err,
                   "--loss rkl with the top-k teacher of %s needs --topk-missing uniform: with "
                   "drop, KL(s || t) over the top k rewards moving the student's probability "
                   "outside them",
                   ds->path);
  r->source = ds->teacher_kind == KD_TEACHER_TOPK ? KD_SOURCE_TOPK : KD_SOURCE_DENSE_OFFLINE;
  return kd_dataset_check_teacher((kd_dataset *)ds, err);
}

int kd_train_run(const kd_train_options *given, kd_error *err) {
  kd_train_options eff = *given, *o = &eff;
  char resumed_teacher[4096]; /* an online teacher's path taken from --resume */
  kd_run_state r;
  memset(&r, 0, sizeof r);
  r.o = o;
  r.optim = o->optim;
  r.seed = o->seed;
  r.tty = isatty(2);
  kd_h5_init();
  r.saved_step = r.saved_epoch = r.saved_cursor = -1;
  kd_checkpoint ck;
  memset(&ck, 0, sizeof ck);
  int have_ck = 0, rc = -1, stop_signal = 0, run_dir_fresh = 0, run_dir_created = 0;
  kd_output_lock_t out_lock = {-1, ""};

  r.best_val_accuracy = -1;
  /* Outputs are checked before any work: a run that fails at its first checkpoint an hour
   * in, or that overwrites its own data, is worse than a refusal now. */
  if (o->run_dir && kd_run_dir_open(o->run_dir, o->resume_path, o->force, &run_dir_fresh,
                                    &run_dir_created, err))
    goto done;
  {
    const char *flags[] = {"--data", "--val", "--model", "--teacher", "--init"};
    const char *inputs[] = {o->data_path, o->val_path, o->model_path, o->teacher_path,
                            o->init_path};
    if (kd_check_output_path("--out", o->out_path, err) ||
        kd_check_not_input("--out", o->out_path, 5, flags, inputs, err) ||
        (o->log_path && (kd_check_output_path("--log", o->log_path, err) ||
                         kd_check_not_input("--log", o->log_path, 5, flags, inputs, err) ||
                         kd_check_not_input("--log", o->log_path, 1, (const char *[]){"--out"},
                                            &o->out_path, err) ||
                         kd_check_not_input("--log", o->log_path, 1,
                                            (const char *[]){"--resume"}, &o->resume_path, err))))
      goto done;
  }
  /* One writer per checkpoint path: a second run with the same --out is refused now rather
   * than left to replace this run's checkpoints with its own. */
  if (kd_output_lock("--out", o->out_path, &out_lock, err)) goto done;
  if (o->resume_path) {
    if (kd_checkpoint_read(o->resume_path, &ck, err)) goto done;
    have_ck = 1;
    if (kd_resume_check_optimizer(&ck, o->resume_path, err) ||
        kd_resume_settings(o, &ck, resumed_teacher, sizeof resumed_teacher, err))
      goto done;
    char source[4200];
    snprintf(source, sizeof source, "%s: /meta/model_config", o->resume_path);
    if (kd_model_parse(&r.model, ck.model_config, source, err)) goto done;
    if (o->model_path || o->model_json) {
      kd_model given;
      if (o->model_path ? kd_model_load(&given, o->model_path, err)
                        : kd_model_parse(&given, o->model_json, o->model_json_source, err))
        goto done;
      /* The same network: input and layers equal, hyper-parameters (a dropout rate, a
       * batch-norm momentum) included; the name and description may differ. */
      cJSON *a = cJSON_Parse(given.spec_json), *b = cJSON_Parse(r.model.spec_json);
      int same = cJSON_Compare(cJSON_GetObjectItemCaseSensitive(a, "input"),
                               cJSON_GetObjectItemCaseSensitive(b, "input"), 1) &&
                 cJSON_Compare(cJSON_GetObjectItemCaseSensitive(a, "layers"),
                               cJSON_GetObjectItemCaseSensitive(b, "layers"), 1);
      cJSON_Delete(a);
      cJSON_Delete(b);
      kd_model_free(&given);
      if (!same) {
        kd_fail(err, "--model %s does not describe the network stored in --resume %s (its "
                "input or layers differ from /meta/model_config; a resumed run keeps its model)",
                o->model_path ? o->model_path : "(the recipe's inline spec)", o->resume_path);
        goto done;
      }
    }
    kd_optimizer_type ck_type = !strcmp(ck.optimizer_type, "sgd") ? KD_OPT_SGD : KD_OPT_ADAMW;
    if (o->optim_set && ck_type != o->optim.type) {
      kd_fail(err, "--resume %s was trained with --optimizer %s; resume with the same optimizer",
              o->resume_path, ck.optimizer_type);
      goto done;
    }
    /* The optimizer continues with the hyper-parameters it was saved with. */
    r.optim.type = ck_type;
    r.optim.lr = (float)ck.lr;
    r.optim.momentum = (float)ck.momentum;
    r.optim.dampening = (float)ck.dampening;
    r.optim.weight_decay = (float)ck.weight_decay;
    r.optim.beta1 = (float)ck.beta1;
    r.optim.beta2 = (float)ck.beta2;
    r.optim.eps = (float)ck.eps;
    r.optim.nesterov = ck.nesterov;
    r.optim.clip_grad_norm = o->optim.clip_grad_norm; /* from /meta/train_config */
  } else if (o->model_path ? kd_model_load(&r.model, o->model_path, err)
                            : kd_model_parse(&r.model, o->model_json, o->model_json_source, err)) {
    goto done;
  }

  if (kd_dataset_open(&r.train, o->data_path, err)) goto done;
  r.train_open = 1;
  if (check_data_fits(&r.train, &r.model, err)) goto done;
  if (o->val_path) {
    if (kd_dataset_open(&r.val, o->val_path, err)) goto done;
    r.val_open = 1;
    if (check_data_fits(&r.val, &r.model, err)) goto done;
  }

  if (kd_device_open(&r.dev, o->device, o->kernels_binary, o->profile, err)) goto done;
  r.dev_open = 1;
  if (o->gemm_set) {
    r.dev.gemm_backend = o->gemm;
    if (o->gemm == KD_GEMM_CLBLAST && !kd_gemm_clblast_usable(&r.dev, err)) {
      kd_fail_context(err, "--gemm clblast on '%s'", r.dev.info.name);
      goto done;
    }
  }
  /* A batch larger than the data only wastes device memory. */
  if (o->batch > r.train.num_rows) o->batch = r.train.num_rows;
  if (have_ck && kd_resume_check_position(&ck, o->resume_path, r.train.num_rows, o->batch,
                                          o->data_path, err))
    goto done;
  if (setup_teacher(&r, err)) goto done;
  if (kd_trainer_create(&r.trainer, &r.dev, &r.model, (size_t)o->batch,
                        r.source == KD_SOURCE_TOPK ? (size_t)r.train.teacher_k : 0, err)) {
    kd_fail_context(err, "model '%s' (%s) at --batch %lld", r.model.name,
                    o->model_path ? o->model_path : "from --resume or the recipe",
                    (long long)o->batch);
    goto done;
  }
  r.trainer_open = 1;
  size_t n = r.model.param_floats;
  r.host_params = calloc(n, sizeof(float));
  r.host_buffers = calloc(r.model.buffer_floats + 1, sizeof(float));
  r.host_state = calloc(2 * n, sizeof(float));
  r.order = malloc((size_t)r.train.num_rows * sizeof(int64_t));
  if (!r.host_params || !r.host_buffers || !r.host_state || !r.order) {
    kd_fail(err, "out of host memory");
    goto done;
  }
  if (have_ck) {
    if (kd_run_restore(&r, &ck, err)) goto done;
    cJSON *cfg = cJSON_Parse(ck.train_config ? ck.train_config : "");
    const cJSON *secs = cJSON_GetObjectItemCaseSensitive(cfg, "train_seconds");
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(cfg, "rows_trained");
    if (cJSON_IsNumber(secs) && secs->valuedouble >= 0) r.train_seconds = secs->valuedouble;
    if (cJSON_IsNumber(rows) && rows->valuedouble >= 0) r.rows_trained = (int64_t)rows->valuedouble;
    const cJSON *sums = cJSON_GetObjectItemCaseSensitive(cfg, "epoch_loss_sums");
    if (cJSON_IsArray(sums) && cJSON_GetArraySize(sums) == 4 && r.cursor > 0) {
      int i = 0;
      for (const cJSON *v = sums->child; v; v = v->next, i++)
        r.epoch_sums[i] = cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : 0;
    }
    cJSON_Delete(cfg);
  } else {
    kd_model_init_params(&r.model, r.host_params, r.host_buffers, r.seed);
    if (o->init_path &&
        kd_state_dict_from_file(&r.model, o->init_path, r.host_params, r.host_buffers,
                                r.trainer.bn_tracked, err)) {
      kd_fail_context(err, "--init");
      goto done;
    }
    if (kd_trainer_write_params(&r.trainer, r.host_params, r.host_buffers, err)) goto done;
  }
  if (kd_loader_open(&r.loader, &r.train, (size_t)o->batch,
                     r.source == KD_SOURCE_DENSE_OFFLINE || r.source == KD_SOURCE_TOPK, &r.dev,
                     err))
    goto done;
  r.loader_open = 1;
  if (o->run_dir) {
    /* The checks passed: an earlier run in the directory gives way (--force), and the
     * effective settings are saved before the first step. */
    if (run_dir_fresh && kd_run_dir_clear(o->run_dir, err)) goto done;
    if (have_ck) r.best_val_accuracy = kd_run_dir_best_accuracy(o->run_dir);
    cJSON *recipe = kd_run_effective_recipe(&r);
    int bad = kd_run_dir_write_json(o->run_dir, "recipe.json", recipe, err);
    cJSON_Delete(recipe);
    if (bad) goto done;
  }
  if (o->log_path) {
    r.log = fopen(o->log_path, have_ck ? "a" : "w");
    if (!r.log) {
      kd_fail(err, "--log %s: cannot open for writing", o->log_path);
      goto done;
    }
  }
  if (!o->quiet)
    fprintf(stderr,
            "kdcl: %s '%s' (%zu parameters) on %lld rows of %s, device '%s', gemm %s%s\n",
            o->distill ? "distilling into" : "training", r.model.name,
            kd_model_count_params(&r.model), (long long)r.train.num_rows,
            o->data_path, r.dev.info.name, kd_gemm_backend_name(r.dev.gemm_backend),
            have_ck ? ", resumed" : "");
  const kd_loader *ld = &r.loader;
  if (!o->quiet && !ld->on_device && !ld->resident && ld->x_filtered)
    fprintf(stderr, "kdcl: note: %s is streamed (larger than KDCL_DATA_MEMORY) and its /inputs/x "
                    "is compressed: each of an epoch's %lld windows decompresses most of it; an "
                    "uncompressed copy (h5repack -f /inputs/x:NONE) or a larger KDCL_DATA_MEMORY "
                    "reads it faster\n",
            o->data_path,
            (long long)((r.train.num_rows + (int64_t)ld->window_rows - 1) /
                        (int64_t)ld->window_rows));
  if (have_ck && r.epoch >= o->epochs && !o->quiet)
    fprintf(stderr, "kdcl: note: --resume %s is already at epoch %lld of --epochs %lld: nothing "
                    "to train\n", o->resume_path, (long long)r.epoch, (long long)o->epochs);
  kd_stop_signals_install();
  rc = run_epochs(&r, err);
  stop_signal = kd_stop_requested();
  if (rc == 0 && stop_signal) {
    /* Interrupted: --out gets the position reached (mid-epoch included) unless it has it. */
    if (r.saved_step != r.step || r.saved_epoch != r.epoch || r.saved_cursor != r.cursor)
      rc = kd_run_save_checkpoint(&r, o->out_path, err);
  } else {
    if (rc == 0 && r.step == 0 && !have_ck) rc = kd_run_save_checkpoint(&r, o->out_path, err);
    /* Nothing left to do: --out still gets the checkpoint (it may name another file); a run
     * directory already holds it. */
    if (rc == 0 && have_ck && r.epoch >= o->epochs && r.step == ck.step && !o->run_dir)
      rc = kd_run_save_checkpoint(&r, o->out_path, err);
  }
  kd_stop_signals_restore();
  if (rc == 0 && stop_signal) {
    int64_t N = r.train.num_rows, spe = (N + o->batch - 1) / o->batch;
    char where[128];
    if (r.cursor > 0)
      snprintf(where, sizeof where, "in epoch %lld of %lld, %lld of %lld rows done",
               (long long)r.epoch + 1, (long long)o->epochs, (long long)r.cursor, (long long)N);
    else
      snprintf(where, sizeof where, "%lld of %lld epochs done", (long long)r.epoch,
               (long long)o->epochs);
    kd_fail(err, "%s: stopped after step %lld of %lld (%s); wrote %s; continue with --resume %s",
            stop_signal == SIGINT ? "SIGINT" : stop_signal == SIGTERM ? "SIGTERM" : "signal",
            (long long)r.step, (long long)(spe * o->epochs), where, o->out_path,
            o->run_dir ? o->run_dir : o->out_path);
    rc = 128 + stop_signal;
  }
  int nothing_trained = have_ck && r.step == ck.step;
  if (rc == 0 && !stop_signal && o->run_dir && !nothing_trained) {
    if (r.val_open && !r.have_last_val) { /* nothing trained in this process: evaluate now */
      if ((rc = kd_evaluate(&r.trainer, &r.val, 1, &r.last_val, NULL, err)) == 0)
        r.have_last_val = 1;
    }
    cJSON *eval = kd_run_final_evaluation(&r);
    if (rc == 0) rc = kd_run_dir_write_json(o->run_dir, "eval.json", eval, err);
    cJSON_Delete(eval);
  }
  if (rc == 0 && !o->quiet)
    fprintf(stderr, "kdcl: wrote %s\n", o->run_dir ? o->run_dir : o->out_path);
  if (rc == 0 && o->profile) {
    kd_layer_profile_print(&r.trainer, stderr);
    kd_profile_print(&r.dev, stderr);
  }
done:
  kd_output_unlock(&out_lock);
  if (rc != 0 && run_dir_created) kd_run_dir_remove_if_empty(o->run_dir, run_dir_created);
  if (r.loader_open) kd_loader_close(&r.loader);
  if (r.trainer_open) kd_trainer_release(&r.trainer);
  kd_inference_close(&r.teacher);
  if (r.dev_open) kd_device_close(&r.dev);
  if (r.train_open) kd_dataset_close(&r.train);
  if (r.val_open) kd_dataset_close(&r.val);
  if (r.log) fclose(r.log);
  if (have_ck) kd_checkpoint_free(&ck);
  kd_model_free(&r.model);
  free(r.host_params);
  free(r.host_buffers);
  free(r.host_state);
  free(r.order);
  return rc;
}
