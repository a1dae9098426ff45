/* kdcl train and kdcl distill: one option parser, one run. train fits the labels
 * (cross-entropy); distill adds a teacher's outputs through a distillation loss. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/flags.h"
#include "cli/recipe.h"
#include "nn/gemm.h"
#include "train/run.h"
#include "train/run_dir.h"

static void help(int distill) {
  if (distill)
    printf(
        "usage: kdcl distill --model SPEC.json --data TRAIN.h5 --out CKPT.h5 [--teacher T.h5]\n"
        "                    [--loss L] [--temperature T] [--alpha A] [options]\n\n"
        "Trains the student SPEC.json to imitate a teacher as well as the labels: the loss is\n"
        "alpha * CE(labels) + (1 - alpha) * a distillation term. The teacher is the /teacher of\n"
        "TRAIN.h5 (offline: written by 'kdcl label' or 'kdcl import teacher-topk'), or a\n"
        "checkpoint run online in evaluation mode with --teacher.\n\n"
        "distillation:\n"
        "  --teacher CKPT.h5        run this teacher online, on the same device, without gradients\n"
      "                           (default: the offline /teacher of TRAIN.h5)\n"
        "  --loss L                 kd (default): T^2 KL(t||s); rkl: T^2 KL(s||t);\n"
        "                           jsd: T^2 [b KL(t||m) + (1-b) KL(s||m)], m = b t + (1-b) s;\n"
        "                           skl: T^2 KL(t || l t + (1-l) s); tvd: T^2 1/2 sum|t-s|;\n"
        "                           mse: mean (z_s - z_t)^2; ce: labels only (alpha = 1)\n"
        "  --temperature T          softmax temperature, > 0 (default 4)\n"
        "  --alpha A                weight of the label CE, in [0, 1] (default 0.5)\n"
        "  --beta B                 jsd mixture weight, in (0, 1) (default 0.5)\n"
        "  --skew L                 skl mixture weight, in [0, 1) (default 0.1)\n"
        "  --topk-missing drop|uniform  top-k teacher: drop the other classes (default), or\n"
        "                           spread the missing probability evenly over them\n\n");
  else
    printf(
        "usage: kdcl train --model SPEC.json --data TRAIN.h5 --out CKPT.h5 [options]\n\n"
        "Trains the network of SPEC.json on TRAIN.h5 (cross-entropy on /labels/y), every step\n"
        "as OpenCL kernels, and writes an HDF5 checkpoint (after every epoch and at the end).\n"
        "SIGINT or SIGTERM stops it after the current step with a checkpoint (exit 130/143);\n"
        "a second signal stops it at once.\n\n");
  printf(
      "experiment:\n"
      "  --config RECIPE.json     take options from a JSON object keyed by the long option\n"
      "                           names (\"lr\": 0.002, \"lr_schedule\": \"cosine\", \"betas\": [0.9,\n"
      "                           0.999], \"no-shuffle\": true, \"model\": a path or the spec\n"
      "                           itself); flags on the command line override it. Relative\n"
      "                           paths count from the current directory. See models/recipes/\n"
      "  --run-dir DIR            keep the run in DIR: recipe.json (the effective settings, a\n"
      "                           recipe that reruns it), metrics.jsonl, checkpoints/latest.h5,\n"
      "                           checkpoints/best.h5 (highest --val accuracy), eval.json.\n"
      "                           Replaces --out and --log. An existing run is refused unless\n"
      "                           --resume DIR or --force\n"
      "  --keep N                 also keep the last N epochs' checkpoints in DIR/checkpoints as\n"
      "                           epoch-NNNN.h5 (default 0)\n"
      "  --force                  replace the run in an existing --run-dir (default off)\n"
      "data and model:\n"
      "  --model SPEC.json        model spec (see models/); optional with --resume\n"
      "  --data TRAIN.h5          training set (kdcl dataset schema)\n"
      "  --out CKPT.h5            checkpoint to write (atomically: NAME.tmp, then renamed);\n"
      "                           required unless --run-dir\n"
      "  --val VAL.h5             evaluate on this set after every epoch (default: none)\n"
      "  --init WEIGHTS.h5        start from the /model tensors of this file (same names,\n"
      "                           shapes; default: PyTorch's initialisation from --seed)\n"
      "  --resume CKPT.h5|DIR     continue a run from its checkpoint (or a run directory's\n"
      "                           latest.h5) toward --epochs; its settings are kept (default:\n"
      "                           a new run)\n"
      "run:\n"
      "  --epochs N               total epochs of the run (default 10)\n"
      "  --batch B                rows per step (default 128; the last partial batch is used)\n"
      "  --seed N                 seed of initialisation, shuffling and dropout, 0 to 2^53-1\n"
      "                           (default 1)\n"
      "  --no-shuffle             keep file order (default: shuffled per epoch)\n"
      "  --checkpoint-every N     also write --out every N steps (default 0: epochs only)\n"
      "  --log FILE.jsonl         one JSON object per logged step and per epoch (default: none)\n"
      "  --log-every N            steps between log records / progress updates (default 50)\n"
      "  --quiet                  no progress or summary lines on stderr (default: shown)\n"
      "  --no-file-locking        no HDF5 file locks, no lock on --out (NFS and other file\n"
      "                           systems without locks; or HDF5_USE_FILE_LOCKING=FALSE;\n"
      "                           default: locking on)\n"
      "  --profile                time every kernel launch (serialises the queue) and print\n"
      "                           each kernel's share of the device time at the end (default off)\n"
      "device:\n"
      KD_CLI_HELP_DEVICE_OPTIONS
      "optimizer (defaults and meanings as in torch.optim):\n"
      "  --optimizer sgd|adamw    default adamw\n"
      "  --lr X                   default 0.001 (adamw), 0.01 (sgd)\n"
      "  --momentum M             sgd momentum (default 0)\n"
      "  --dampening D            sgd dampening (default 0)\n"
      "  --nesterov               sgd Nesterov momentum (needs --momentum > 0; default off)\n"
      "  --weight-decay W         default 0.01 (adamw, decoupled), 0 (sgd, L2 added to grads)\n"
      "  --betas B1,B2            adamw betas (default 0.9,0.999)\n"
      "  --eps E                  adamw eps (default 1e-8)\n"
      "  --clip-grad-norm X       clip the global gradient L2 norm to X (default 0: off)\n"
      "  --lr-schedule S          constant|step|cosine (default constant)\n"
      "  --warmup-steps N         linear warm-up over the first N steps (default 0)\n"
      "  --lr-step-epochs N       step schedule: multiply by --lr-gamma every N epochs\n"
      "                           (default: a third of --epochs, rounded up)\n"
      "  --lr-gamma G             step schedule factor (default 0.1)\n"
      "  --help                   this text\n"
      "environment (unset or empty: the default):\n"
      "  KDCL_DATA_MEMORY=MiB     a training set up to this size is read once and held (default\n"
      "                           64); a larger one is streamed through two windows of an eighth\n"
      "                           of it each; 0: stream a batch at a time\n"
      "  KDCL_DATA_ON_DEVICE=1|0  hold it on the device (default on GPUs and accelerators) or in\n"
      "                           host memory (default on CPU devices)\n"
      "  KDCL_DEVICE=SEL          the default of --device\n");
}

enum {
  OPT_MODEL = 256, OPT_DATA, OPT_OUT, OPT_VAL, OPT_INIT, OPT_RESUME, OPT_LOG, OPT_LOG_EVERY,
  OPT_DEVICE, OPT_GEMM, OPT_KBIN, OPT_SEED, OPT_EPOCHS, OPT_BATCH, OPT_NO_SHUFFLE, OPT_QUIET,
  OPT_CKPT_EVERY, OPT_OPTIMIZER, OPT_LR, OPT_MOMENTUM, OPT_DAMPENING, OPT_NESTEROV, OPT_WD,
  OPT_BETAS, OPT_EPS, OPT_CLIP, OPT_SCHEDULE, OPT_WARMUP, OPT_STEP_EPOCHS, OPT_GAMMA, OPT_HELP,
  OPT_PROFILE, OPT_TEACHER, OPT_LOSS, OPT_TEMPERATURE, OPT_ALPHA, OPT_BETA, OPT_SKEW, OPT_TOPK_MISSING,
  OPT_CONFIG, OPT_RUN_DIR, OPT_KEEP, OPT_FORCE, OPT_LAST = OPT_FORCE
};

/* Integer settings stay below 2^53, so recipe.json and /meta/train_config (JSON numbers,
 * doubles to most readers) hold them exactly. */
#define KD_MAX_EXACT_INT (((int64_t)1 << 53) - 1)

/* Options whose recipe values are text; the other options with an argument take numbers. */
static const char *const text_options[] = {
    "model", "data", "out", "val", "init", "resume", "log", "device", "gemm", "kernels-binary",
    "optimizer", "lr-schedule", "teacher", "loss", "topk-missing", "run-dir", NULL};

/* --run-dir and --resume DIR: the paths inside the run directory. */
typedef struct run_dir_paths {
  char out[4200], log[4200], resume[4200];
} run_dir_paths;

static int is_directory(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int apply_run_dir(const char *cmd, kd_train_options *o, int out_given, int log_given,
                         run_dir_paths *p) {
  kd_error err = {{0}};
  int resumed_dir = o->resume_path && is_directory(o->resume_path);
  struct stat st;
  if (o->resume_path && !resumed_dir && stat(o->resume_path, &st) != 0)
    return kd_cli_usage_error(cmd, "--resume %s: no such checkpoint or run directory",
                              o->resume_path);
  if (resumed_dir) {
    if (kd_run_dir_path(p->resume, sizeof p->resume, o->resume_path, "checkpoints/latest.h5",
                        &err))
      return kd_cli_error(&err);
    if (stat(p->resume, &st) != 0) {
      kd_fail(&err, "--resume %s: no checkpoints/latest.h5 (not a run directory, or its run "
              "stopped before its first checkpoint: start it again without --resume)",
              o->resume_path);
      return kd_cli_error(&err);
    }
    if (!o->run_dir) o->run_dir = o->resume_path;
    o->resume_path = p->resume;
  }
  if (!o->run_dir) {
    if (o->keep) return kd_cli_usage_error(cmd, "--keep needs --run-dir");
    if (o->force) return kd_cli_usage_error(cmd, "--force needs --run-dir");
    return 0;
  }
  const char *why = resumed_dir ? "--resume of a run directory continues it there, and it keeps"
                                : "--run-dir and the run directory keeps";
  if (out_given)
    return kd_cli_usage_error(cmd, "--out is not for a run directory: %s its checkpoints in "
                              "%s/checkpoints/", why, o->run_dir);
  if (log_given)
    return kd_cli_usage_error(cmd, "--log is not for a run directory: %s its metrics in "
                              "%s/metrics.jsonl", why, o->run_dir);
  if (kd_run_dir_path(p->out, sizeof p->out, o->run_dir, "checkpoints/latest.h5", &err) ||
      kd_run_dir_path(p->log, sizeof p->log, o->run_dir, "metrics.jsonl", &err))
    return kd_cli_error(&err);
  o->out_path = p->out;
  o->log_path = p->log;
  return 0;
}

static int parse_distill_flag(const char *cmd, int c, const char *arg, kd_train_options *o) {
  double v;
  int rc = 0;
  switch (c) {
    case OPT_TEACHER: o->teacher_path = arg; break;
    case OPT_LOSS:
      o->loss_set = 1;
      if (kd_distill_loss_parse(arg, &o->dcfg.loss))
        return kd_cli_usage_error(cmd, "--loss expects kd, rkl, jsd, skl, tvd, mse or ce, got '%s'",
                                  arg);
      break;
    case OPT_TOPK_MISSING:
      o->topk_missing_set = 1;
      if (kd_topk_missing_parse(arg, &o->dcfg.topk_missing))
        return kd_cli_usage_error(cmd, "--topk-missing expects drop or uniform, got '%s'", arg);
      break;
    case OPT_TEMPERATURE:
      o->temperature_set = 1;
      if ((rc = kd_flag_positive(cmd, "--temperature", arg, 1e4, &v)) == 0) o->dcfg.temperature = (float)v;
      break;
    case OPT_ALPHA:
      o->alpha_set = 1;
      if ((rc = kd_flag_double(cmd, "--alpha", arg, 0, 1, &v)) == 0) o->dcfg.alpha = (float)v;
      break;
    case OPT_BETA:
      o->beta_set = 1;
      rc = kd_flag_double(cmd, "--beta", arg, -1e30, 1e30, &v);
      if (rc == 0 && !(v > 0 && v < 1))
        return kd_cli_usage_error(cmd, "--beta expects a number in (0, 1), got '%s'", arg);
      o->dcfg.beta = (float)v;
      break;
    case OPT_SKEW:
      o->skew_set = 1;
      rc = kd_flag_double(cmd, "--skew", arg, -1e30, 1e30, &v);
      if (rc == 0 && !(v >= 0 && v < 1))
        return kd_cli_usage_error(cmd, "--skew expects a number in [0, 1), got '%s'", arg);
      o->dcfg.skew = (float)v;
      break;
  }
  return rc;
}

static const struct option opts[] = {
    {"config", required_argument, 0, OPT_CONFIG},
    {"run-dir", required_argument, 0, OPT_RUN_DIR},
    {"keep", required_argument, 0, OPT_KEEP},
    {"force", no_argument, 0, OPT_FORCE},
    {"model", required_argument, 0, OPT_MODEL},
    {"data", required_argument, 0, OPT_DATA},
    {"out", required_argument, 0, OPT_OUT},
    {"val", required_argument, 0, OPT_VAL},
    {"init", required_argument, 0, OPT_INIT},
    {"resume", required_argument, 0, OPT_RESUME},
    {"log", required_argument, 0, OPT_LOG},
    {"log-every", required_argument, 0, OPT_LOG_EVERY},
    {"device", required_argument, 0, OPT_DEVICE},
    {"gemm", required_argument, 0, OPT_GEMM},
    {"kernels-binary", required_argument, 0, OPT_KBIN},
    {"seed", required_argument, 0, OPT_SEED},
    {"epochs", required_argument, 0, OPT_EPOCHS},
    {"batch", required_argument, 0, OPT_BATCH},
    {"no-shuffle", no_argument, 0, OPT_NO_SHUFFLE},
    {"quiet", no_argument, 0, OPT_QUIET},
    {"checkpoint-every", required_argument, 0, OPT_CKPT_EVERY},
    {"optimizer", required_argument, 0, OPT_OPTIMIZER},
    {"lr", required_argument, 0, OPT_LR},
    {"momentum", required_argument, 0, OPT_MOMENTUM},
    {"dampening", required_argument, 0, OPT_DAMPENING},
    {"nesterov", no_argument, 0, OPT_NESTEROV},
    {"weight-decay", required_argument, 0, OPT_WD},
    {"betas", required_argument, 0, OPT_BETAS},
    {"eps", required_argument, 0, OPT_EPS},
    {"clip-grad-norm", required_argument, 0, OPT_CLIP},
    {"lr-schedule", required_argument, 0, OPT_SCHEDULE},
    {"warmup-steps", required_argument, 0, OPT_WARMUP},
    {"lr-step-epochs", required_argument, 0, OPT_STEP_EPOCHS},
    {"lr-gamma", required_argument, 0, OPT_GAMMA},
    {"help", no_argument, 0, OPT_HELP},
    {"profile", no_argument, 0, OPT_PROFILE},
    {"teacher", required_argument, 0, OPT_TEACHER},
    {"loss", required_argument, 0, OPT_LOSS},
    {"temperature", required_argument, 0, OPT_TEMPERATURE},
    {"alpha", required_argument, 0, OPT_ALPHA},
    {"beta", required_argument, 0, OPT_BETA},
    {"skew", required_argument, 0, OPT_SKEW},
    {"topk-missing", required_argument, 0, OPT_TOPK_MISSING},
    {0, 0, 0, 0}};

/* argv[1 .. recipe_argc] came from the recipe `config` (for error messages). */
static int parse_and_run(const char *cmd, int distill, int argc, char **argv, int recipe_argc,
                         const char *config, const char *inline_model, int resumed_recipe) {
  char context[4300] = "";
  if (config) snprintf(context, sizeof context, "--config %s", config);
  kd_train_options o;
  kd_train_options_defaults(&o);
  o.distill = distill;
  unsigned char given[OPT_LAST - OPT_MODEL + 1] = {0};
  o.model_json = inline_model;
  char model_source[4300];
  snprintf(model_source, sizeof model_source, "--config %s: model", config ? config : "");
  o.model_json_source = model_source;
  run_dir_paths dir_paths;
  int out_given = 0, log_given = 0;
  kd_distill_config_defaults(&o.dcfg);
  /* Optimizer flags are collected first: their defaults depend on --optimizer. */
  double lr = -1, momentum = 0, dampening = 0, wd = -1, beta1 = 0.9, beta2 = 0.999, eps = 1e-8,
         clip = 0;
  int nesterov = 0, c, rc = 0;
  int64_t i64;
  kd_optimizer_type type = KD_OPT_ADAMW;
  opterr = 0;
  for (;;) {
    /* An option from the recipe is reported with the recipe's name. */
    kd_cli_set_context(config && optind <= recipe_argc ? context : NULL);
    int from_recipe = optind <= recipe_argc;
    if (rc != 0 || (c = kd_getopt(cmd, argc, argv, opts)) == -1) break;
    /* On the command line an option comes once (it may override the recipe's). */
    if (!from_recipe && c >= OPT_MODEL && c <= OPT_LAST && given[c - OPT_MODEL]++) {
      const char *flag = argv[optind - 1];
      if (strncmp(flag, "--", 2) && optind >= 2) flag = argv[optind - 2];
      return kd_cli_usage_error(cmd, "%.*s is given twice", (int)strcspn(flag, "="), flag);
    }
    switch (c) {
      case KD_FLAG_BAD_VALUE: return KD_EXIT_USAGE;
      case OPT_MODEL: o.model_path = optarg; break;
      case OPT_DATA: o.data_path = optarg; break;
      case OPT_OUT:
        o.out_path = optarg;
        out_given = 1;
        break;
      case OPT_VAL: o.val_path = optarg; break;
      case OPT_INIT: o.init_path = optarg; break;
      case OPT_RESUME: o.resume_path = optarg; break;
      case OPT_LOG:
        o.log_path = optarg;
        log_given = 1;
        break;
      case OPT_RUN_DIR: o.run_dir = optarg; break;
      case OPT_KEEP: rc = kd_flag_int64(cmd, "--keep", optarg, 0, 1000000, &o.keep); break;
      case OPT_FORCE: o.force = 1; break;
      case OPT_DEVICE: o.device = optarg; break;
      case OPT_KBIN: o.kernels_binary = optarg; break;
      case OPT_NO_SHUFFLE:
        o.shuffle = 0;
        o.shuffle_set = 1;
        break;
      case OPT_QUIET: o.quiet = 1; break;
      case OPT_PROFILE: o.profile = 1; break;
      case OPT_NESTEROV: nesterov = 1; break;
      case OPT_HELP: help(distill); return KD_EXIT_OK;
      case OPT_GEMM:
        if (kd_gemm_backend_parse(optarg, &o.gemm))
          return kd_cli_usage_error(cmd, "--gemm expects auto, clblast or builtin, got '%s'", optarg);
        o.gemm_set = 1;
        break;
      case OPT_OPTIMIZER:
        if (!strcmp(optarg, "sgd")) type = KD_OPT_SGD;
        else if (!strcmp(optarg, "adamw")) type = KD_OPT_ADAMW;
        else return kd_cli_usage_error(cmd, "--optimizer expects sgd or adamw, got '%s'", optarg);
        o.optim_set = 1;
        break;
      case OPT_SCHEDULE:
        o.schedule_set = 1;
        if (kd_lr_schedule_parse(optarg, &o.schedule))
          return kd_cli_usage_error(cmd, "--lr-schedule expects constant, step or cosine, got '%s'",
                                    optarg);
        break;
      case OPT_SEED:
        rc = kd_flag_int64(cmd, "--seed", optarg, 0, KD_MAX_EXACT_INT, &i64);
        o.seed = (uint64_t)i64;
        o.seed_set = 1;
        break;
      case OPT_EPOCHS:
        rc = kd_flag_int64(cmd, "--epochs", optarg, 1, 1000000, &o.epochs);
        o.epochs_set = 1;
        break;
      case OPT_BATCH:
        rc = kd_flag_int64(cmd, "--batch", optarg, 1, 1 << 24, &o.batch);
        o.batch_set = 1;
        break;
      case OPT_LOG_EVERY:
        rc = kd_flag_int64(cmd, "--log-every", optarg, 1, KD_MAX_EXACT_INT, &o.log_every);
        break;
      case OPT_CKPT_EVERY:
        rc = kd_flag_int64(cmd, "--checkpoint-every", optarg, 0, KD_MAX_EXACT_INT, &o.checkpoint_every);
        break;
      case OPT_WARMUP:
        o.warmup_set = 1;
        rc = kd_flag_int64(cmd, "--warmup-steps", optarg, 0, KD_MAX_EXACT_INT, &o.warmup_steps);
        break;
      case OPT_STEP_EPOCHS:
        o.step_epochs_set = 1;
        rc = kd_flag_int64(cmd, "--lr-step-epochs", optarg, 1, 1000000, &o.lr_step_epochs);
        break;
      case OPT_GAMMA:
        o.gamma_set = 1;
        rc = kd_flag_positive(cmd, "--lr-gamma", optarg, 1.0, &o.lr_gamma);
        break;
      case OPT_LR:
        rc = kd_flag_positive(cmd, "--lr", optarg, 1e6, &lr);
        o.lr_set = 1;
        break;
      case OPT_MOMENTUM: rc = kd_flag_double(cmd, "--momentum", optarg, 0, 0.999999, &momentum); break;
      case OPT_DAMPENING: rc = kd_flag_double(cmd, "--dampening", optarg, 0, 1, &dampening); break;
      case OPT_WD: rc = kd_flag_double(cmd, "--weight-decay", optarg, 0, 1e3, &wd); break;
      case OPT_EPS: rc = kd_flag_positive(cmd, "--eps", optarg, 1, &eps); break;
      case OPT_CLIP:
        o.clip_set = 1;
        rc = kd_flag_double(cmd, "--clip-grad-norm", optarg, 0, 1e12, &clip);
        break;
      case OPT_BETAS: {
        char b1[64], b2[64], extra;
        if (sscanf(optarg, "%63[^,],%63s%c", b1, b2, &extra) != 2)
          return kd_cli_usage_error(cmd, "--betas expects B1,B2 (e.g. 0.9,0.999), got '%s'",
                                    optarg);
        rc = kd_flag_double(cmd, "--betas", b1, 0, 0.999999, &beta1);
        if (rc == 0) rc = kd_flag_double(cmd, "--betas", b2, 0, 0.999999, &beta2);
        break;
      }
      case OPT_TEACHER: case OPT_LOSS: case OPT_TEMPERATURE: case OPT_ALPHA: case OPT_BETA:
      case OPT_SKEW: case OPT_TOPK_MISSING:
        if (!distill) {
          const char *flag = argv[optind - 1];
          if (strncmp(flag, "--", 2) != 0 && optind >= 2) flag = argv[optind - 2];
          return kd_cli_usage_error(cmd, "%s belongs to 'kdcl distill'", flag);
        }
        rc = parse_distill_flag(cmd, c, optarg, &o);
        break;
      default:
        return kd_cli_usage_error(cmd, "unknown option or missing value: '%s'", argv[optind - 1]);
    }
  }
  kd_cli_set_context(NULL);
  if (rc) return rc;
  if (optind < argc) return kd_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
  if ((rc = apply_run_dir(cmd, &o, out_given, log_given, &dir_paths)) != 0) return rc;
  if (o.model_path) o.model_json = NULL; /* a --model flag overrides a recipe's inline spec */
  if (!o.model_path && !o.model_json && !o.resume_path)
    return kd_cli_usage_error(cmd, "--model SPEC.json is required");
  if (!o.data_path && o.run_dir && o.resume_path && !config)
    return kd_cli_usage_error(cmd, "--resume %s: the run directory has no recipe.json to take "
                              "the data and settings from: give --data and the run's settings",
                              o.run_dir);
  if (!o.data_path) return kd_cli_usage_error(cmd, "--data TRAIN.h5 is required");
  if (!o.out_path) return kd_cli_usage_error(cmd, "--out CKPT.h5 or --run-dir DIR is required");
  /* A run directory's recipe names the --init its run started from; resuming, the weights come
   * from the checkpoint instead. */
  if (resumed_recipe) o.init_path = NULL;
  if (o.init_path && o.resume_path)
    return kd_cli_usage_error(cmd, "--init and --resume exclude each other");
  if (nesterov && (type != KD_OPT_SGD || momentum <= 0))
    return kd_cli_usage_error(cmd, "--nesterov needs --optimizer sgd and --momentum > 0");
  if (nesterov && dampening != 0)
    return kd_cli_usage_error(cmd, "--nesterov needs --dampening 0 (as in torch.optim.SGD)");
  kd_optim_config_defaults(&o.optim, type);
  if (lr > 0) o.optim.lr = (float)lr;
  if (wd >= 0) o.optim.weight_decay = (float)wd;
  o.optim.momentum = (float)momentum;
  o.optim.dampening = (float)dampening;
  o.optim.nesterov = nesterov;
  o.optim.beta1 = (float)beta1;
  o.optim.beta2 = (float)beta2;
  o.optim.eps = (float)eps;
  o.optim.clip_grad_norm = (float)clip;

  if (distill && o.dcfg.loss == KD_LOSS_CE) o.dcfg.alpha = 1.0f; /* labels only */
  if (distill && o.loss_set && o.dcfg.loss == KD_LOSS_CE) o.alpha_set = 1;
  kd_error err = {{0}};
  rc = kd_train_run(&o, &err);
  if (rc == KD_DIVERGED) {
    fprintf(stderr, "kdcl: error: %s\n", err.msg);
    return KD_EXIT_DIVERGED;
  }
  if (rc > 128) { /* SIGINT/SIGTERM: a checkpoint was written; exit as the signal would */
    fprintf(stderr, "kdcl: %s\n", err.msg);
    return rc;
  }
  return rc ? kd_cli_error(&err) : KD_EXIT_OK;
}

/* `--resume DIR` of a run directory without --config: DIR/recipe.json is the recipe, so the
 * run continues with its data, model and settings from that one flag. Returns the recipe's
 * path in buf, or NULL. */
static const char *resumed_recipe(int argc, char **argv, char *buf, size_t cap) {
  const char *dir = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--")) break;
    if (!strcmp(argv[i], "--config") || !strncmp(argv[i], "--config=", 9)) return NULL;
    if (!strcmp(argv[i], "--resume") && i + 1 < argc) dir = argv[++i];
    else if (!strncmp(argv[i], "--resume=", 9)) dir = argv[i] + 9;
  }
  struct stat st;
  if (!dir || !is_directory(dir) || snprintf(buf, cap, "%s/recipe.json", dir) >= (int)cap ||
      stat(buf, &st) != 0)
    return NULL;
  return buf;
}

/* Expands --config RECIPE.json into arguments before the command line's own, then runs. */
static int run_command(const char *cmd, int distill, int argc, char **argv) {
  kd_error err = {{0}};
  int n;
  char **expanded, *inline_model, recipe[4200];
  const char *resumed = resumed_recipe(argc, argv, recipe, sizeof recipe);
  char **args = argv;
  if (resumed) { /* argv + "--config DIR/recipe.json" */
    if (!(args = malloc((size_t)(argc + 3) * sizeof *args))) {
      kd_fail(&err, "out of host memory");
      return kd_cli_error(&err);
    }
    memcpy(args, argv, (size_t)argc * sizeof *args);
    args[argc] = "--config";
    args[argc + 1] = recipe;
    args[argc + 2] = NULL;
  }
  int recipe_argc = 0;
  const char *config = NULL; /* the file the recipe's options came from */
  int failed = kd_recipe_expand(resumed ? argc + 2 : argc, args, opts, text_options, &n,
                                &expanded, &recipe_argc, &config, &inline_model, &err);
  if (resumed) free(args);
  if (failed) return kd_cli_error(&err);
  int rc = parse_and_run(cmd, distill, n, expanded, recipe_argc, config, inline_model,
                         resumed != NULL);
  kd_recipe_free(n, expanded);
  free(inline_model);
  return rc;
}

int kd_cmd_train(int argc, char **argv) { return run_command("train", 0, argc, argv); }

int kd_cmd_distill(int argc, char **argv) { return run_command("distill", 1, argc, argv); }
