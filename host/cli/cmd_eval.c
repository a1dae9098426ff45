/* kdcl eval and kdcl predict: a checkpoint's model over a dataset, in evaluation mode. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "cli/flags.h"
#include "data/logits.h"
#include "data/paths.h"
#include "nn/gemm.h"
#include "train/evaluate.h"

typedef struct infer_flags {
  const char *checkpoint, *data, *out, *device, *kernels_binary;
  int json, gemm_set;
  kd_gemm_backend gemm;
  int64_t batch;
} infer_flags;

static void help(const char *cmd) {
  int predict = !strcmp(cmd, "predict");
  printf("usage: kdcl %s --checkpoint CKPT.h5 --data DATA.h5 %s[options]\n\n", cmd,
         predict ? "--out LOGITS.h5 " : "");
  if (predict)
    printf("Runs the checkpoint's model (evaluation mode) over every row of DATA.h5 and writes\n"
           "the logits as /logits f32 [N, classes] to LOGITS.h5 (atomically).\n\n");
  else
    printf("Runs the checkpoint's model (evaluation mode) over every row of DATA.h5 and prints\n"
           "accuracy and mean cross-entropy against /labels/y; with a /teacher in DATA.h5, also\n"
           "top-1 agreement with the teacher and mean KL(teacher || model) at T = 1.\n\n");
  printf("  --checkpoint CKPT.h5     checkpoint written by kdcl train\n"
         "  --data DATA.h5           dataset (kdcl dataset schema)\n"
         "%s"
         "  --batch B                rows per forward pass (default 256)\n"
         KD_CLI_HELP_DEVICE_OPTIONS
         "%s"
         "  --no-file-locking        no HDF5 file locks (NFS; default: locking on)\n"
         "  --help                   this text\n",
         predict ? "  --out LOGITS.h5          where to write the logits\n" : "",
         predict ? "" : "  --json                   print one JSON object on stdout (default: text)\n");
}

static int parse(const char *cmd, int argc, char **argv, infer_flags *f) {
  enum { O_CKPT = 256, O_DATA, O_OUT, O_DEVICE, O_GEMM, O_KBIN, O_JSON, O_BATCH, O_HELP };
  static const struct option opts[] = {{"checkpoint", required_argument, 0, O_CKPT},
                                       {"data", required_argument, 0, O_DATA},
                                       {"out", required_argument, 0, O_OUT},
                                       {"device", required_argument, 0, O_DEVICE},
                                       {"gemm", required_argument, 0, O_GEMM},
                                       {"kernels-binary", required_argument, 0, O_KBIN},
                                       {"json", no_argument, 0, O_JSON},
                                       {"batch", required_argument, 0, O_BATCH},
                                       {"help", no_argument, 0, O_HELP},
                                       {0, 0, 0, 0}};
  memset(f, 0, sizeof *f);
  f->batch = 256;
  int predict = !strcmp(cmd, "predict"), c, rc;
  opterr = 0;
  while ((c = kd_getopt(cmd, argc, argv, opts)) != -1) {
    if (c == KD_FLAG_BAD_VALUE) return KD_EXIT_USAGE;
    switch (c) {
      case O_CKPT: f->checkpoint = optarg; break;
      case O_DATA: f->data = optarg; break;
      case O_OUT:
        if (!predict) return kd_cli_usage_error(cmd, "unknown option '--out'");
        f->out = optarg;
        break;
      case O_DEVICE: f->device = optarg; break;
      case O_KBIN: f->kernels_binary = optarg; break;
      case O_JSON:
        if (predict) return kd_cli_usage_error(cmd, "unknown option '--json'");
        f->json = 1;
        break;
      case O_GEMM:
        if (kd_gemm_backend_parse(optarg, &f->gemm))
          return kd_cli_usage_error(cmd, "--gemm expects auto, clblast or builtin, got '%s'", optarg);
        f->gemm_set = 1;
        break;
      case O_BATCH:
        if ((rc = kd_flag_int64(cmd, "--batch", optarg, 1, 1 << 24, &f->batch))) return rc;
        break;
      case O_HELP: help(cmd); return -1;
      default:
        return kd_cli_usage_error(cmd, "unknown option or missing value: '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) return kd_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
  if (!f->checkpoint) return kd_cli_usage_error(cmd, "--checkpoint CKPT.h5 is required");
  if (!f->data) return kd_cli_usage_error(cmd, "--data DATA.h5 is required");
  if (predict && !f->out) return kd_cli_usage_error(cmd, "--out LOGITS.h5 is required");
  return 0;
}

/* Opens checkpoint and data, checks they fit, and evaluates; logits_out optional. */
static int run(const infer_flags *f, kd_eval_result *res, float **logits, int64_t *rows,
               int64_t *classes, kd_error *err) {
  kd_inference inf;
  kd_dataset ds;
  if (kd_dataset_open(&ds, f->data, err)) return -1;
  int rc = kd_inference_open(&inf, f->checkpoint, f->device, f->kernels_binary, f->gemm_set,
                             f->gemm, (size_t)f->batch, err);
  if (rc == 0) {
    const kd_model *m = &inf.model;
    if (ds.sample_size != m->input_size)
      rc = kd_fail(err, "%s: /inputs/x rows have %zu features but the model of %s takes %zu",
                   f->data, ds.sample_size, f->checkpoint, m->input_size);
    else if ((size_t)ds.num_classes != m->num_classes)
      rc = kd_fail(err, "%s: /labels/y has num_classes %d but the model of %s outputs %zu",
                   f->data, ds.num_classes, f->checkpoint, m->num_classes);
    if (rc == 0) rc = kd_dataset_check_labels(&ds, err);
    if (rc == 0) rc = kd_dataset_check_inputs(&ds, err);
    if (rc == 0 && !logits && ds.teacher_kind != KD_TEACHER_NONE) {
      if ((size_t)ds.teacher_classes != m->num_classes)
        rc = kd_fail(err, "%s: /teacher has %d classes but the model of %s outputs %zu", f->data,
                     ds.teacher_classes, f->checkpoint, m->num_classes);
      else
        rc = kd_dataset_check_teacher(&ds, err);
    }
    if (rc == 0 && logits) {
      *logits = malloc((size_t)ds.num_rows * m->num_classes * sizeof(float));
      if (!*logits) rc = kd_fail(err, "out of host memory for %lld x %zu logits",
                                 (long long)ds.num_rows, m->num_classes);
    }
    if (rc == 0) rc = kd_evaluate(&inf.trainer, &ds, !logits, res, logits ? *logits : NULL, err);
    *rows = ds.num_rows;
    *classes = (int64_t)m->num_classes;
    kd_inference_close(&inf);
  }
  kd_dataset_close(&ds);
  return rc;
}

int kd_cmd_eval(int argc, char **argv) {
  infer_flags f;
  int rc = parse("eval", argc, argv, &f);
  if (rc) return rc < 0 ? KD_EXIT_OK : rc;
  kd_error err = {{0}};
  kd_eval_result res;
  int64_t rows, classes;
  if (run(&f, &res, NULL, &rows, &classes, &err)) return kd_cli_error(&err);
  if (f.json) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "checkpoint", f.checkpoint);
    cJSON_AddStringToObject(j, "data", f.data);
    cJSON_AddNumberToObject(j, "rows", (double)res.rows);
    cJSON_AddNumberToObject(j, "correct", (double)res.correct);
    cJSON_AddNumberToObject(j, "accuracy", res.accuracy);
    cJSON_AddNumberToObject(j, "loss", res.mean_loss);
    if (res.has_teacher) {
      cJSON_AddNumberToObject(j, "teacher_agreement", res.agreement);
      cJSON_AddNumberToObject(j, "teacher_kl", res.teacher_kl);
    }
    char *s = cJSON_PrintUnformatted(j);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(j);
  } else {
    printf("accuracy %.4f (%lld/%lld)  loss %.6f", res.accuracy, (long long)res.correct,
           (long long)res.rows, res.mean_loss);
    if (res.has_teacher)
      printf("  teacher agreement %.4f  KL(teacher || model) %.6f", res.agreement,
             res.teacher_kl);
    printf("\n");
  }
  return KD_EXIT_OK;
}

int kd_cmd_predict(int argc, char **argv) {
  infer_flags f;
  int rc = parse("predict", argc, argv, &f);
  if (rc) return rc < 0 ? KD_EXIT_OK : rc;
  kd_error err = {{0}};
  if (kd_check_output_path("--out", f.out, &err) ||
      kd_check_not_input("--out", f.out, 2, (const char *[]){"--data", "--checkpoint"},
                         (const char *[]){f.data, f.checkpoint}, &err))
    return kd_cli_error(&err);
  kd_eval_result res;
  float *logits = NULL;
  int64_t rows = 0, classes = 0;
  rc = run(&f, &res, &logits, &rows, &classes, &err);
  if (rc == 0) rc = kd_logits_write(f.out, logits, rows, classes, &err);
  free(logits);
  if (rc) return kd_cli_error(&err);
  fprintf(stderr, "kdcl: wrote /logits [%lld, %lld] to %s\n", (long long)rows, (long long)classes,
          f.out);
  return KD_EXIT_OK;
}
