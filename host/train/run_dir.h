/* Run directories (`--run-dir DIR`): everything of one training run in one place.
 *
 *   DIR/recipe.json              the effective settings, as a --config recipe that reruns it
 *   DIR/metrics.jsonl            the step and epoch records (--log)
 *   DIR/checkpoints/latest.h5    the checkpoint --resume continues from (--out)
 *   DIR/checkpoints/best.h5      the epoch with the highest validation accuracy (needs --val)
 *   DIR/checkpoints/best.json    {"epoch", "step", "val_accuracy"} of best.h5
 *   DIR/checkpoints/epoch-NNNN.h5  the last --keep N epochs
 *   DIR/eval.json                the final evaluation, written when the run completes
 *
 * Snapshots (best.h5, epoch-NNNN.h5) are hard links to the latest.h5 just written: the next
 * checkpoint replaces latest.h5 by rename, so a link keeps the old file at no cost. */
#ifndef KD_RUN_DIR_H
#define KD_RUN_DIR_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "runtime/error.h"

/* Writes DIR/NAME (NAME may hold "checkpoints/...") into buf; fails when it does not fit. */
int kd_run_dir_path(char *buf, size_t cap, const char *dir, const char *name, kd_error *err);

/* Makes DIR and DIR/checkpoints (parents too) and decides whether a run may go there:
 *   a new or empty DIR, or one whose run stopped before its first checkpoint: yes, *fresh = 1;
 *   DIR holding a run (checkpoints/latest.h5): only to continue it (resume_path is that very
 *   file; *fresh = 0) or with force (*fresh = 1);
 *   DIR holding files other than a run's: never (it is not a run directory).
 * *fresh says the files of an earlier run must go (kd_run_dir_clear, once the new run has
 * passed its checks). *created records the directories made here (bit 0: DIR, bit 1: its
 * checkpoints/, the bits from 2: how many of its parents), for kd_run_dir_remove_if_empty.
 * Nothing is removed here. */
int kd_run_dir_open(const char *dir, const char *resume_path, int force, int *fresh,
                    int *created, kd_error *err);

/* After a run that failed before writing anything: removes the directories kd_run_dir_open
 * made (the run directory, its checkpoints/ and the parents made for it), if they are still
 * empty. */
void kd_run_dir_remove_if_empty(const char *dir, int created);

/* Removes the files an earlier run left in DIR (the ones listed above, nothing else): for a
 * fresh run, once it has passed its checks. */
int kd_run_dir_clear(const char *dir, kd_error *err);

/* Writes a JSON object to DIR/NAME atomically (pretty-printed, newline-terminated). */
int kd_run_dir_write_json(const char *dir, const char *name, const cJSON *json, kd_error *err);

/* After epoch `epoch` (1-based) was written to latest.h5: when keep > 0, links it as
 * epoch-NNNN.h5 and removes the epoch checkpoints older than the last `keep`. */
int kd_run_dir_epoch_done(const char *dir, int64_t epoch, int64_t keep, kd_error *err);

/* The validation accuracy of best.h5 from best.json, or -1 when there is none yet. */
double kd_run_dir_best_accuracy(const char *dir);

/* latest.h5 holds a new best: links it as best.h5 (replacing the old one atomically) and
 * writes best.json. */
int kd_run_dir_mark_best(const char *dir, int64_t epoch, int64_t step, double val_accuracy,
                         kd_error *err);

#endif
