/* kdcl bench gemm|step: GEMM throughput and accuracy for one shape, and the speed of a training
 * step with its kernel profile, fed from a file or not (host/train/bench.c). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "cli/flags.h"
#include "nn/gemm.h"
#include "train/bench.h"

static void help(void) {
  printf(
      "usage: kdcl bench gemm --m M --n N --k K [--ta] [--tb] [options]\n"
      "       kdcl bench step --model SPEC.json [--batch B] [--loss L] [--data FILE.h5] [options]\n\n"
      "gemm: times C[M,N] = op(A)[M,K] * op(B)[K,N] (row-major; --ta, --tb transpose the stored\n"
      "A [K,M] and B [N,K]) through the GEMM back end, on random operands in [-1, 1). Each sample\n"
      "runs enough calls back to back to last ~10 ms; prints the best and median GFLOP/s and the\n"
      "largest error of 1024 sampled outputs against a double-precision reference (absolute, and\n"
      "relative to the sum of |a*b| over k).\n"
      "  --m M, --n N, --k K      the shape (each 1 to 1048576; each matrix at most 2^28\n"
      "                           elements)\n"
      "  --ta, --tb               transpose A, B (default: neither)\n"
      "  --repeat R               timed samples (default 10)\n\n"
      "step: one training step of SPEC.json at batch B on synthetic data already on the device\n"
      "(random inputs, labels and teacher logits; no files): forward, loss, backward, one\n"
      "optimizer launch and, every 8 steps, the asynchronous read-back of their losses, as 'kdcl\n"
      "train' enqueues them. Prints samples/s, ms per step (median of R chunks, queue drained\n"
      "after each), kernel launches per step; step / GEMM: the step's built-in GEMM launches,\n"
      "recorded from one step, replayed alone in every round and timed the same way (the median\n"
      "of the rounds' ratios); then from a second, profiled run each kernel's device ms and\n"
      "share, device bytes per arena and peak RSS.\n"
      "  --model SPEC.json        model spec (see models/)\n"
      "  --batch B                rows per step (default 128)\n"
      "  --loss L                 ce (labels only, default) or a distillation loss against dense\n"
      "                           teacher logits (with --data, the file's /teacher, dense or\n"
      "                           top-k): kd, rkl, jsd, skl, tvd, mse\n"
      "  --temperature T, --alpha A   distillation settings (defaults 4, 0.5)\n"
      "  --optimizer sgd|adamw    default adamw; --lr X (default 0.001 adamw, 0.01 sgd)\n"
      "  --steps S                timed steps (default 100; with --data, per feed)\n"
      "  --warmup W               untimed steps first (default 10; with --data, per feed)\n"
      "  --rounds R               timed chunks of S/R steps (default 5)\n"
      "  --upload                 copy the batch from host memory every step, as training does\n"
      "                           (default off)\n"
      "  --data FILE.h5           also feed the step from this dataset (a kdcl dataset whose\n"
      "                           rows fit the model; with a /teacher unless --loss ce) through\n"
      "                           the training loader exactly as 'kdcl train|distill' read it:\n"
      "                           held on the device or in host memory up to KDCL_DATA_MEMORY\n"
      "                           MiB (default 64; KDCL_DATA_ON_DEVICE=1|0 chooses), else\n"
      "                           streamed through windows by its prefetch thread; shuffled\n"
      "                           epochs. Each of R rounds times S/R steps of each feed in turn:\n"
      "                           the file's first batch kept on the device, that batch copied\n"
      "                           from host memory every step, and the file. Prints each feed's\n"
      "                           ms per step (median over the rounds) and file / on-device\n"
      "                           (median of the rounds' ratios) (default: none)\n\n"
      "both:\n"
      KD_CLI_HELP_DEVICE_OPTIONS
      "  --json                   print exactly one JSON object on stdout (default: text)\n"
      "  --help                   this text\n");
}

enum {
  O_M = 256, O_N, O_K, O_TA, O_TB, O_REPEAT, O_MODEL, O_BATCH, O_LOSS, O_TEMP, O_ALPHA, O_OPT,
  O_LR, O_STEPS, O_WARMUP, O_UPLOAD, O_DEVICE, O_GEMM, O_JSON, O_HELP, O_ROUNDS, O_DATA, O_KBIN
};

static void print_json(cJSON *root) {
  char *s = cJSON_PrintUnformatted(root);
  if (s) printf("%s\n", s);
  free(s);
  cJSON_Delete(root);
}

static int run_gemm(const char *device, const char *kernels_binary, int gemm_set,
                    kd_gemm_backend gemm, const kd_bench_gemm_opts *o, int json) {
  kd_error err = {{0}};
  kd_device dev;
  if (kd_device_open(&dev, device, kernels_binary, 0, &err)) return kd_cli_error(&err);
  if (gemm_set) {
    dev.gemm_backend = gemm;
    if (gemm == KD_GEMM_CLBLAST && !kd_gemm_clblast_usable(&dev, &err)) {
      kd_fail_context(&err, "--gemm clblast on '%s'", dev.info.name);
      kd_device_close(&dev);
      return kd_cli_error(&err);
    }
  }
  kd_bench_gemm_result r;
  int rc = kd_bench_gemm(&dev, o, &r, &err);
  const char *backend = kd_gemm_backend_name(dev.gemm_backend);
  char device_name[256];
  snprintf(device_name, sizeof device_name, "%s", dev.info.name);
  kd_device_close(&dev);
  if (rc) return kd_cli_error(&err);
  const char *ops = o->trans_a ? (o->trans_b ? "TT" : "TN") : (o->trans_b ? "NT" : "NN");
  if (json) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "bench", "gemm");
    cJSON_AddStringToObject(j, "device", device_name);
    cJSON_AddStringToObject(j, "gemm", backend);
    cJSON_AddNumberToObject(j, "m", (double)o->m);
    cJSON_AddNumberToObject(j, "n", (double)o->n);
    cJSON_AddNumberToObject(j, "k", (double)o->k);
    cJSON_AddStringToObject(j, "op", ops);
    cJSON_AddNumberToObject(j, "repeat", o->repeat);
    cJSON_AddNumberToObject(j, "calls_per_sample", r.calls_per_sample);
    cJSON_AddNumberToObject(j, "best_ms", r.best_ms);
    cJSON_AddNumberToObject(j, "median_ms", r.median_ms);
    cJSON_AddNumberToObject(j, "best_gflops", r.best_gflops);
    cJSON_AddNumberToObject(j, "median_gflops", r.median_gflops);
    cJSON_AddNumberToObject(j, "checked", (double)r.checked);
    cJSON_AddNumberToObject(j, "max_abs_err", r.max_abs_err);
    cJSON_AddNumberToObject(j, "max_rel_err", r.max_rel_err);
    print_json(j);
  } else {
    printf("gemm %s %zux%zux%zu (M x N x K) on '%s', %s: best %.1f GFLOP/s (%.3f ms), median "
           "%.1f GFLOP/s (%.3f ms); %d calls per sample, %d samples\n",
           ops, o->m, o->n, o->k, device_name, backend, r.best_gflops, r.best_ms,
           r.median_gflops, r.median_ms, r.calls_per_sample, o->repeat);
    printf("error of %zu sampled outputs vs double: max abs %.3g, max relative to sum|a*b| %.3g\n",
           r.checked, r.max_abs_err, r.max_rel_err);
  }
  return KD_EXIT_OK;
}

static int run_step(const kd_bench_step_opts *o, int json) {
  kd_error err = {{0}};
  kd_bench_step_result *r = malloc(sizeof *r);
  if (!r) {
    fprintf(stderr, "kdcl: error: out of host memory\n");
    return KD_EXIT_ERROR;
  }
  if (kd_bench_step(o, r, &err)) {
    free(r);
    return kd_cli_error(&err);
  }
  const char *loss = kd_distill_loss_name(o->loss);
  if (json) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "bench", "step");
    cJSON_AddStringToObject(j, "model", r->model_name);
    cJSON_AddStringToObject(j, "model_path", o->model_path);
    cJSON_AddNumberToObject(j, "params", (double)r->params);
    cJSON_AddStringToObject(j, "device", r->device_name);
    cJSON_AddStringToObject(j, "gemm", kd_gemm_backend_name(r->gemm));
    cJSON_AddNumberToObject(j, "batch", (double)o->batch);
    cJSON_AddStringToObject(j, "loss", loss);
    cJSON_AddStringToObject(j, "optimizer", kd_optimizer_name(o->optim.type));
    cJSON_AddBoolToObject(j, "upload", o->upload);
    cJSON_AddNumberToObject(j, "steps", o->steps);
    cJSON_AddNumberToObject(j, "samples_per_s", r->samples_per_s);
    cJSON_AddNumberToObject(j, "step_ms", r->step_ms);
    cJSON_AddNumberToObject(j, "best_step_ms", r->best_step_ms);
    cJSON_AddNumberToObject(j, "launches_per_step", r->launches_per_step);
    cJSON_AddNumberToObject(j, "kernel_ms_per_step", r->kernel_ms_per_step);
    cJSON_AddNumberToObject(j, "profiled_gemm_ms_per_step", r->profiled_gemm_ms_per_step);
    cJSON_AddNumberToObject(j, "gemm_ms_per_step", r->gemm_ms_per_step);
    cJSON_AddNumberToObject(j, "gemm_launches_per_step", r->gemm_launches_per_step);
    if (r->step_over_gemm > 0) cJSON_AddNumberToObject(j, "step_over_gemm", r->step_over_gemm);
    else cJSON_AddNullToObject(j, "step_over_gemm");
    cJSON *ks = cJSON_AddArrayToObject(j, "kernels");
    for (int i = 0; i < r->num_kernels; i++) {
      cJSON *k = cJSON_CreateObject();
      cJSON_AddStringToObject(k, "name", r->kernels[i].name);
      cJSON_AddNumberToObject(k, "launches_per_step", r->kernels[i].launches_per_step);
      cJSON_AddNumberToObject(k, "ms_per_step", r->kernels[i].ms_per_step);
      cJSON_AddNumberToObject(k, "share", r->kernel_ms_per_step > 0
                                              ? r->kernels[i].ms_per_step / r->kernel_ms_per_step
                                              : 0);
      cJSON_AddItemToArray(ks, k);
    }
    cJSON *ar = cJSON_AddObjectToObject(j, "device_bytes");
    for (int i = 0; i < r->num_arenas; i++)
      cJSON_AddNumberToObject(ar, r->arenas[i].name, (double)r->arenas[i].bytes);
    cJSON_AddNumberToObject(ar, "total", (double)r->device_bytes);
    cJSON_AddNumberToObject(j, "peak_rss_bytes", (double)r->peak_rss_kib * 1024.0);
    if (r->with_data) {
      cJSON *d = cJSON_AddObjectToObject(j, "data");
      cJSON_AddStringToObject(d, "path", o->data_path);
      cJSON_AddNumberToObject(d, "rows", (double)r->data_rows);
      cJSON_AddStringToObject(d, "inputs", r->data_x_is_u8 ? "uint8" : "float32");
      cJSON_AddStringToObject(d, "teacher", r->data_teacher);
      cJSON_AddStringToObject(d, "held", r->data_held);
      cJSON_AddNumberToObject(d, "rounds", r->data_rounds);
      cJSON_AddNumberToObject(d, "steps_per_block", r->data_block_steps);
      cJSON_AddNumberToObject(d, "epochs_started", (double)r->data_epochs_started);
      cJSON_AddNumberToObject(d, "resident_step_ms", r->resident_step_ms);
      cJSON_AddNumberToObject(d, "host_step_ms", r->host_step_ms);
      cJSON_AddNumberToObject(d, "file_step_ms", r->file_step_ms);
      cJSON_AddNumberToObject(d, "file_over_resident", r->file_over_resident);
      cJSON_AddNumberToObject(d, "file_over_resident_of_medians", r->file_over_resident_of_medians);
      cJSON_AddNumberToObject(d, "host_over_resident", r->host_over_resident);
    }
    print_json(j);
  } else {
    printf("step: %s (%zu parameters), batch %zu, loss %s, %s, on '%s', gemm %s%s\n",
           r->model_name, r->params, o->batch, loss, kd_optimizer_name(o->optim.type),
           r->device_name, kd_gemm_backend_name(r->gemm), o->upload ? ", batch uploaded" : "");
    printf("  %.0f samples/s, %.3f ms per step (best chunk %.3f), %.1f launches per step\n",
           r->samples_per_s, r->step_ms, r->best_step_ms, r->launches_per_step);
    if (r->step_over_gemm > 0)
      printf("  the step's %d GEMM launches alone %.3f ms per step: step / GEMM = %.2f (median of "
             "the rounds' ratios)\n",
             r->gemm_launches_per_step, r->gemm_ms_per_step, r->step_over_gemm);
    else
      printf("  GEMM time not measured (the GEMMs ran in CLBlast)\n");
    printf("  profiled run, device ms per step (kernels sum to %.3f ms):\n", r->kernel_ms_per_step);
    printf("    %-40s %9s %9s %7s\n", "kernel", "launches", "ms", "share");
    for (int i = 0; i < r->num_kernels; i++)
      printf("    %-40s %9.2f %9.3f %6.1f%%\n", r->kernels[i].name, r->kernels[i].launches_per_step,
             r->kernels[i].ms_per_step,
             r->kernel_ms_per_step > 0 ? 100 * r->kernels[i].ms_per_step / r->kernel_ms_per_step
                                       : 0);
    printf("  device memory:");
    for (int i = 0; i < r->num_arenas; i++)
      printf(" %s %.2f MiB%s", r->arenas[i].name, r->arenas[i].bytes / 1048576.0,
             i + 1 < r->num_arenas ? "," : "");
    printf("; total %.2f MiB\n  peak host RSS %.1f MiB\n", r->device_bytes / 1048576.0,
           r->peak_rss_kib / 1024.0);
    if (r->with_data) {
      printf("  data: %s, %lld rows (%s inputs, teacher %s), %s; %d rounds of %d steps per "
             "feed, %lld epochs begun\n",
             o->data_path, (long long)r->data_rows, r->data_x_is_u8 ? "uint8" : "float32",
             r->data_teacher,
             !strcmp(r->data_held, "device")  ? "held on the device, gathered there"
             : !strcmp(r->data_held, "host") ? "held in host memory, gathered with memcpy"
                                             : "streamed by the loader thread",
             r->data_rounds, r->data_block_steps, (long long)r->data_epochs_started);
      printf("    batch already on the device      %.3f ms per step\n", r->resident_step_ms);
      printf("    batch copied from host memory    %.3f ms per step (%.3fx)\n", r->host_step_ms,
             r->host_over_resident);
      printf("    batches read from the file       %.3f ms per step\n", r->file_step_ms);
      printf("    file / on device = %.3f (median of the rounds' ratios; ratio of the medians "
             "%.3f)\n",
             r->file_over_resident, r->file_over_resident_of_medians);
    }
  }
  free(r);
  return KD_EXIT_OK;
}

int kd_cmd_bench(int argc, char **argv) {
  static const struct option opts[] = {
      {"m", required_argument, 0, O_M},           {"n", required_argument, 0, O_N},
      {"k", required_argument, 0, O_K},           {"ta", no_argument, 0, O_TA},
      {"tb", no_argument, 0, O_TB},               {"repeat", required_argument, 0, O_REPEAT},
      {"model", required_argument, 0, O_MODEL},   {"batch", required_argument, 0, O_BATCH},
      {"loss", required_argument, 0, O_LOSS},     {"temperature", required_argument, 0, O_TEMP},
      {"alpha", required_argument, 0, O_ALPHA},   {"optimizer", required_argument, 0, O_OPT},
      {"lr", required_argument, 0, O_LR},         {"steps", required_argument, 0, O_STEPS},
      {"warmup", required_argument, 0, O_WARMUP}, {"upload", no_argument, 0, O_UPLOAD},
      {"device", required_argument, 0, O_DEVICE}, {"gemm", required_argument, 0, O_GEMM},
      {"json", no_argument, 0, O_JSON},           {"help", no_argument, 0, O_HELP},
      {"rounds", required_argument, 0, O_ROUNDS}, {"data", required_argument, 0, O_DATA},
      {"kernels-binary", required_argument, 0, O_KBIN}, {0, 0, 0, 0}};
  const char *cmd = "bench";
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return help(), KD_EXIT_OK;
  if (argc < 2) return kd_cli_usage_error(cmd, "expected 'gemm' or 'step'");
  const char *what = argv[1];
  int is_gemm = !strcmp(what, "gemm"), is_step = !strcmp(what, "step");
  if (!is_gemm && !is_step)
    return kd_cli_usage_error(cmd, "expected 'gemm' or 'step', got '%s'", what);

  kd_bench_gemm_opts g = {0, 0, 0, 0, 0, 10};
  kd_bench_step_opts s;
  memset(&s, 0, sizeof s);
  s.batch = 128;
  s.loss = KD_LOSS_CE;
  s.steps = 100;
  s.warmup = 10;
  kd_distill_config_defaults(&s.dcfg);
  kd_optimizer_type opt = KD_OPT_ADAMW;
  double lr = -1, v;
  int64_t iv;
  int json = 0, c, rc = 0, have_m = 0, have_n = 0, have_k = 0, li = -1;
  /* Flags that belong to the other bench are refused rather than ignored. */
  int wrong = 0;
  opterr = 0;
  optind = 2;
  while ((c = getopt_long(argc, argv, ":", opts, &li)) != -1) {
    /* the flag as typed, for messages (argv[optind - 1] is its value when it takes one) */
    char flag[32] = "?";
    if (c != '?' && c != ':' && li >= 0) snprintf(flag, sizeof flag, "--%s", opts[li].name);
    if (c == ':') return kd_cli_usage_error(cmd, "%s needs a value", argv[optind - 1]);
    switch (c) {
      case O_M: case O_N: case O_K:
        if (!is_gemm) wrong = 1;
        else if ((rc = kd_flag_int64(cmd, c == O_M ? "--m" : c == O_N ? "--n" : "--k", optarg, 1,
                                     1 << 20, &iv)) == 0) {
          if (c == O_M) g.m = (size_t)iv, have_m = 1;
          else if (c == O_N) g.n = (size_t)iv, have_n = 1;
          else g.k = (size_t)iv, have_k = 1;
        }
        break;
      case O_TA: case O_TB:
        if (!is_gemm) wrong = 1;
        else if (c == O_TA) g.trans_a = 1;
        else g.trans_b = 1;
        break;
      case O_REPEAT:
        if (!is_gemm) wrong = 1;
        else if ((rc = kd_flag_int64(cmd, "--repeat", optarg, 1, 100000, &iv)) == 0) g.repeat = (int)iv;
        break;
      case O_MODEL: case O_BATCH: case O_LOSS: case O_TEMP: case O_ALPHA: case O_OPT: case O_LR:
      case O_STEPS: case O_WARMUP: case O_UPLOAD: case O_ROUNDS: case O_DATA:
        if (!is_step) {
          wrong = 1;
          break;
        }
        if (c == O_MODEL) s.model_path = optarg;
        else if (c == O_BATCH) {
          if ((rc = kd_flag_int64(cmd, "--batch", optarg, 1, 1 << 20, &iv)) == 0) s.batch = (size_t)iv;
        } else if (c == O_LOSS) {
          if (kd_distill_loss_parse(optarg, &s.loss))
            return kd_cli_usage_error(cmd, "--loss expects ce, kd, rkl, jsd, skl, tvd or mse, got '%s'",
                                      optarg);
        } else if (c == O_TEMP) {
          if ((rc = kd_flag_positive(cmd, "--temperature", optarg, 1e4, &v)) == 0) s.dcfg.temperature = (float)v;
        } else if (c == O_ALPHA) {
          if ((rc = kd_flag_double(cmd, "--alpha", optarg, 0, 1, &v)) == 0) s.dcfg.alpha = (float)v;
        } else if (c == O_OPT) {
          if (kd_optimizer_parse(optarg, &opt))
            return kd_cli_usage_error(cmd, "--optimizer expects sgd or adamw, got '%s'", optarg);
        } else if (c == O_LR) {
          rc = kd_flag_double(cmd, "--lr", optarg, 0, 1e6, &lr);
        } else if (c == O_STEPS) {
          if ((rc = kd_flag_int64(cmd, "--steps", optarg, 1, 1000000, &iv)) == 0) s.steps = (int)iv;
        } else if (c == O_WARMUP) {
          if ((rc = kd_flag_int64(cmd, "--warmup", optarg, 0, 1000000, &iv)) == 0) s.warmup = (int)iv;
        } else if (c == O_ROUNDS) {
          if ((rc = kd_flag_int64(cmd, "--rounds", optarg, 1, 10000, &iv)) == 0) s.rounds = (int)iv;
        } else if (c == O_DATA) {
          s.data_path = optarg;
        } else {
          s.upload = 1;
        }
        break;
      case O_DEVICE: s.device = optarg; break;
      case O_KBIN: s.kernels_binary = optarg; break;
      case O_GEMM:
        if (kd_gemm_backend_parse(optarg, &s.gemm))
          return kd_cli_usage_error(cmd, "--gemm expects auto, clblast or builtin, got '%s'", optarg);
        s.gemm_set = 1;
        break;
      case O_JSON: json = 1; break;
      case O_HELP: return help(), KD_EXIT_OK;
      default:
        return kd_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
    }
    if (rc) return rc;
    if (wrong) return kd_cli_usage_error(cmd, "%s does not apply to 'bench %s'", flag, what);
  }
  if (optind < argc) return kd_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
  if (is_gemm) {
    if (!have_m || !have_n || !have_k)
      return kd_cli_usage_error(cmd, "bench gemm needs --m, --n and --k");
    return run_gemm(s.device, s.kernels_binary, s.gemm_set, s.gemm, &g, json);
  }
  if (!s.model_path) return kd_cli_usage_error(cmd, "bench step needs --model SPEC.json");
  if (s.data_path && s.upload)
    return kd_cli_usage_error(cmd, "--upload does not apply with --data, which times the batch "
                                   "on the device, copied from host memory, and from the file");
  kd_optim_config_defaults(&s.optim, opt);
  if (lr >= 0) s.optim.lr = (float)lr;
  if (s.loss == KD_LOSS_CE) s.dcfg.alpha = 1.0f;
  return run_step(&s, json);
}
