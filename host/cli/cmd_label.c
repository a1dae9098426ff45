/* kdcl label: a teacher checkpoint's outputs for every row of a dataset, written into its
 * /teacher (dense logits, or the top-k log-probabilities an API would return). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/flags.h"
#include "data/paths.h"
#include "data/teacher.h"
#include "nn/gemm.h"
#include "train/evaluate.h"

static void help(void) {
  printf("usage: kdcl label --teacher CKPT.h5 --data DATA.h5 [--topk K] [--out OUT.h5] [options]\n\n"
         "Runs the teacher (evaluation mode) over every row of DATA.h5 and writes /teacher:\n"
         "dense logits [N, C], or with --topk K the K most likely classes and their\n"
         "log-probabilities (natural log, normalised over all C classes, sorted descending).\n"
         "DATA.h5 is rewritten safely (a new file beside it, renamed over it): killed at any\n"
         "moment, it stays readable and as it was. With --out, DATA.h5 is left alone and\n"
         "OUT.h5 receives a copy with /teacher.\n\n"
         "  --teacher CKPT.h5        teacher checkpoint (written by kdcl train or distill)\n"
         "  --data DATA.h5           dataset to label\n"
         "  --topk K                 store the top K classes only (1 <= K <= classes; default:\n"
         "                           dense logits of every class)\n"
         "  --out OUT.h5             write a labelled copy instead of updating DATA.h5 (default:\n"
         "                           DATA.h5 is updated in place, safely)\n"
         "  --teacher-id ID          recorded as /teacher attr teacher_id (default: the\n"
         "                           teacher's model name and checkpoint path)\n"
         "  --batch B                rows per forward pass (default 256)\n"
         KD_CLI_HELP_DEVICE_OPTIONS
         "  --no-file-locking        no HDF5 file locks (NFS; default: locking on)\n"
         "  --help                   this text\n");
}

/* The K largest log-probabilities of one row of logits, sorted descending. */
static void row_topk(const float *z, size_t C, size_t K, int32_t *idx, float *logp) {
  double zmax = z[0], sum = 0;
  for (size_t c = 1; c < C; c++)
    if (z[c] > zmax) zmax = z[c];
  for (size_t c = 0; c < C; c++) sum += exp((double)z[c] - zmax);
  double lse = zmax + log(sum);
  for (size_t k = 0; k < K; k++) idx[k] = -1;
  /* Insertion into a sorted list of K: C is a class count, K small. */
  for (size_t c = 0; c < C; c++) {
    size_t pos = K;
    while (pos > 0 && (idx[pos - 1] < 0 || z[c] > z[idx[pos - 1]])) pos--;
    if (pos >= K) continue;
    for (size_t k = K - 1; k > pos; k--) idx[k] = idx[k - 1];
    idx[pos] = (int32_t)c;
  }
  for (size_t k = 0; k < K; k++) logp[k] = (float)((double)z[idx[k]] - lse);
}

int kd_cmd_label(int argc, char **argv) {
  enum { O_TEACHER = 256, O_DATA, O_TOPK, O_OUT, O_ID, O_BATCH, O_DEVICE, O_GEMM, O_KBIN, O_HELP };
  static const struct option opts[] = {{"teacher", required_argument, 0, O_TEACHER},
                                       {"data", required_argument, 0, O_DATA},
                                       {"topk", required_argument, 0, O_TOPK},
                                       {"out", required_argument, 0, O_OUT},
                                       {"teacher-id", required_argument, 0, O_ID},
                                       {"batch", required_argument, 0, O_BATCH},
                                       {"device", required_argument, 0, O_DEVICE},
                                       {"gemm", required_argument, 0, O_GEMM},
                                       {"kernels-binary", required_argument, 0, O_KBIN},
                                       {"help", no_argument, 0, O_HELP},
                                       {0, 0, 0, 0}};
  const char *cmd = "label", *teacher = NULL, *data = NULL, *out = NULL, *id = NULL,
             *device = NULL, *kbin = NULL;
  int64_t topk = 0, batch = 256;
  int gemm_set = 0, c, rc;
  kd_gemm_backend gemm = KD_GEMM_BUILTIN;
  opterr = 0;
  while ((c = kd_getopt("label", argc, argv, opts)) != -1) {
    if (c == KD_FLAG_BAD_VALUE) return KD_EXIT_USAGE;
    switch (c) {
      case O_TEACHER: teacher = optarg; break;
      case O_DATA: data = optarg; break;
      case O_OUT: out = optarg; break;
      case O_ID: id = optarg; break;
      case O_DEVICE: device = optarg; break;
      case O_KBIN: kbin = optarg; break;
      case O_TOPK:
        if ((rc = kd_flag_int64(cmd, "--topk", optarg, 1, 1 << 24, &topk))) return rc;
        break;
      case O_BATCH:
        if ((rc = kd_flag_int64(cmd, "--batch", optarg, 1, 1 << 24, &batch))) return rc;
        break;
      case O_GEMM:
        if (kd_gemm_backend_parse(optarg, &gemm))
          return kd_cli_usage_error(cmd, "--gemm expects auto, clblast or builtin, got '%s'", optarg);
        gemm_set = 1;
        break;
      case O_HELP: help(); return KD_EXIT_OK;
      default:
        return kd_cli_usage_error(cmd, "unknown option or missing value: '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) return kd_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
  if (!teacher) return kd_cli_usage_error(cmd, "--teacher CKPT.h5 is required");
  if (!data) return kd_cli_usage_error(cmd, "--data DATA.h5 is required");

  kd_error err = {{0}};
  if (out && (kd_check_output_path("--out", out, &err) ||
              kd_check_not_input("--out", out, 1, (const char *[]){"--teacher"},
                                 (const char *[]){teacher}, &err)))
    return kd_cli_error(&err);
  kd_dataset ds;
  if (kd_dataset_open(&ds, data, &err)) return kd_cli_error(&err);
  kd_inference inf;
  if (kd_inference_open(&inf, teacher, device, kbin, gemm_set, gemm, (size_t)batch, &err)) {
    kd_dataset_close(&ds);
    return kd_cli_error(&err);
  }
  const kd_model *m = &inf.model;
  size_t C = m->num_classes, N = (size_t)ds.num_rows, K = (size_t)topk;
  float *logits = NULL, *logp = NULL;
  int32_t *idx = NULL;
  rc = 0;
  if ((size_t)ds.num_classes != C)
    rc = kd_fail(&err, "--teacher %s outputs %zu classes but %s has num_classes %d", teacher, C,
                 data, ds.num_classes);
  else if (ds.sample_size != m->input_size)
    rc = kd_fail(&err, "%s: /inputs/x rows have %zu features but the teacher %s takes %zu", data,
                 ds.sample_size, teacher, m->input_size);
  else if (K > C)
    rc = kd_fail(&err, "--topk %zu is larger than the %zu classes", K, C);
  if (rc == 0) rc = kd_dataset_check_labels(&ds, &err);
  if (rc == 0) rc = kd_dataset_check_inputs(&ds, &err);
  if (rc == 0) {
    logits = malloc(N * C * sizeof *logits);
    if (K) {
      idx = malloc(N * K * sizeof *idx);
      logp = malloc(N * K * sizeof *logp);
    }
    if (!logits || (K && (!idx || !logp)))
      rc = kd_fail(&err, "out of host memory for %zu x %zu teacher outputs", N, C);
  }
  kd_eval_result res;
  if (rc == 0) rc = kd_evaluate(&inf.trainer, &ds, 0, &res, logits, &err);
  kd_dataset_close(&ds);
  char default_id[4400];
  snprintf(default_id, sizeof default_id, "%s (%s)", m->name, teacher);
  if (rc == 0) {
    for (size_t i = 0; i < N * C && rc == 0; i++)
      if (!isfinite(logits[i]))
        rc = kd_fail(&err, "the teacher %s produced a non-finite logit for row %zu", teacher,
                     i / C);
    for (size_t i = 0; K && i < N && rc == 0; i++)
      row_topk(logits + i * C, C, K, idx + i * K, logp + i * K);
  }
  if (rc == 0) {
    kd_teacher_data td = {K ? KD_TEACHER_TOPK : KD_TEACHER_LOGITS, (int64_t)N, (int)C,
                          (int)(K ? K : C), K ? NULL : logits, idx, logp,
                          id ? id : default_id};
    rc = kd_dataset_write_teacher(data, out, &td, &err);
  }
  kd_inference_close(&inf);
  free(logits);
  free(idx);
  free(logp);
  if (rc) return kd_cli_error(&err);
  fprintf(stderr, "kdcl: wrote /teacher (%s, teacher accuracy %.2f%%) to %s\n",
          K ? "top-k" : "logits", 100 * res.accuracy, out ? out : data);
  return KD_EXIT_OK;
}
