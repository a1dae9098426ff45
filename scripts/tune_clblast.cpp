// Tunes CLBlast's single-precision GEMM kernels (Xgemm, XgemmDirect) for one OpenCL device with
// CLBlast's own tuner (clblast::TuneXgemm / TuneXgemmDirect, the search the clblast_tuner_*
// binaries run, exported by libclblast) and writes the best parameters where kdcl looks for
// them: $KDCL_CACHE_DIR/clblast-params-<key>.json, key = FNV-1a 64 of the platform name, device
// name, device version and driver version (host/nn/gemm_cache.c computes the same). kdcl applies
// the file with CLBlastOverrideParameters before its first CLBlast call on that device.
// Each winner is checked through the Sgemm routine before it is written (check_shape).
// Built and run by scripts/tune_clblast.sh; C++ only because the tuning API is C++.
#define CL_TARGET_OPENCL_VERSION 120
#include <clblast.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace {

struct Device {
  cl_platform_id platform;
  cl_device_id device;
  std::string platform_name, name, version, driver, type;
};

std::string info(cl_device_id d, cl_device_info what) {
  char buf[512] = "";
  if (clGetDeviceInfo(d, what, sizeof buf, buf, nullptr) != CL_SUCCESS) return "?";
  buf[sizeof buf - 1] = '\0';
  return buf;
}

std::vector<Device> list_devices() {
  std::vector<Device> out;
  cl_uint np = 0;
  if (clGetPlatformIDs(0, nullptr, &np) != CL_SUCCESS || np == 0) return out;
  std::vector<cl_platform_id> ps(np);
  clGetPlatformIDs(np, ps.data(), nullptr);
  for (auto p : ps) {
    char pname[128] = "?";
    clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof pname, pname, nullptr);
    pname[sizeof pname - 1] = '\0';
    cl_uint nd = 0;
    if (clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, nullptr, &nd) != CL_SUCCESS || nd == 0) continue;
    std::vector<cl_device_id> ds(nd);
    clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, nd, ds.data(), nullptr);
    for (auto d : ds) {
      cl_device_type t = 0;
      clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof t, &t, nullptr);
      out.push_back({p, d, pname, info(d, CL_DEVICE_NAME), info(d, CL_DEVICE_VERSION),
                     info(d, CL_DRIVER_VERSION),
                     (t & CL_DEVICE_TYPE_GPU) ? "gpu"
                     : (t & CL_DEVICE_TYPE_CPU) ? "cpu"
                     : (t & CL_DEVICE_TYPE_ACCELERATOR) ? "accelerator" : "other"});
    }
  }
  return out;
}

bool contains_nocase(const std::string &hay, const std::string &needle) {
  auto lower = [](std::string s) {
    for (auto &c : s) c = (char)tolower((unsigned char)c);
    return s;
  };
  return lower(hay).find(lower(needle)) != std::string::npos;
}

// The selector rules of kdcl --device: an index, cpu|gpu|accelerator, or a name substring.
int select_device(const std::vector<Device> &ds, const char *sel) {
  if (!sel || !*sel) sel = getenv("KDCL_DEVICE");
  if (!sel || !*sel) return ds.empty() ? -1 : 0;
  char *end = nullptr;
  long idx = strtol(sel, &end, 10);
  if (*end == '\0') return idx >= 0 && idx < (long)ds.size() ? (int)idx : -1;
  for (size_t i = 0; i < ds.size(); i++)
    if (ds[i].type == sel) return (int)i;
  for (size_t i = 0; i < ds.size(); i++)
    if (contains_nocase(ds[i].name, sel) || contains_nocase(ds[i].platform_name, sel))
      return (int)i;
  return -1;
}

uint64_t fnv1a64(uint64_t h, const void *data, size_t len) {
  const unsigned char *p = static_cast<const unsigned char *>(data);
  if (h == 0) h = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

uint64_t device_key(const Device &d) {
  uint64_t h = 0;
  for (const std::string *s : {&d.platform_name, &d.name, &d.version, &d.driver})
    h = fnv1a64(h, s->c_str(), s->size() + 1);
  return h;
}

std::string cache_dir() {
  const char *dir = getenv("KDCL_CACHE_DIR");
  if (dir && *dir) return dir;
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  if (xdg && *xdg) return std::string(xdg) + "/kdcl";
  if (home && *home) return std::string(home) + "/.cache/kdcl";
  return "";
}

void mkdir_parents(const std::string &dir) {
  for (size_t i = 1; i <= dir.size(); i++)
    if (i == dir.size() || dir[i] == '/') mkdir(dir.substr(0, i).c_str(), 0755);
}

std::string json_escape(const std::string &s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if ((unsigned char)c < 0x20) {
      char b[8];
      snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else o += c;
  }
  return o;
}

// One routine-level check of the parameters the tuner picked: CLBlastSgemm, every transpose,
// against a double-precision reference on sampled outputs. The tuner validates a kernel on its
// own; the Gemm routine around it (padding, transposes, the direct/indirect switch) is another
// matter: on PoCL 3.1, CLBlast 1.5.3's tuner picked a GEMMK=1 Xgemm configuration that passes
// its own check and returns wrong results from Sgemm.
bool check_shape(cl_context ctx, cl_command_queue q, size_t m, size_t n, size_t k, bool ta,
                 bool tb, std::string &why) {
  cl_int rc;
  std::vector<float> A(m * k), B(k * n), C(m * n);
  uint32_t s = 2463534242u ^ (uint32_t)(m * 31 + n * 17 + k);
  auto rnd = [&]() { return (float)((s = s * 1664525u + 1013904223u) >> 8) / 8388608.0f - 1.0f; };
  for (auto &v : A) v = rnd();
  for (auto &v : B) v = rnd();
  cl_mem a = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, A.size() * 4, A.data(), &rc);
  cl_mem b = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, B.size() * 4, B.data(), &rc);
  cl_mem c = clCreateBuffer(ctx, CL_MEM_READ_WRITE, C.size() * 4, nullptr, &rc);
  size_t lda = ta ? m : k, ldb = tb ? k : n;
  auto st = clblast::Gemm<float>(clblast::Layout::kRowMajor,
                                 ta ? clblast::Transpose::kYes : clblast::Transpose::kNo,
                                 tb ? clblast::Transpose::kYes : clblast::Transpose::kNo, m, n, k,
                                 1.0f, a, 0, lda, b, 0, ldb, 0.0f, c, 0, n, &q, nullptr);
  bool ok = st == clblast::StatusCode::kSuccess &&
            clEnqueueReadBuffer(q, c, CL_TRUE, 0, C.size() * 4, C.data(), 0, nullptr, nullptr) ==
                CL_SUCCESS;
  clReleaseMemObject(a), clReleaseMemObject(b), clReleaseMemObject(c);
  char buf[256];
  if (!ok) {
    snprintf(buf, sizeof buf, "%c%c %zux%zux%zu: CLBlast status %d", ta ? 'T' : 'N',
             tb ? 'T' : 'N', m, n, k, (int)st);
    why = buf;
    return false;
  }
  for (int t = 0; t < 512; t++) {
    size_t i = (size_t)(t * 7919u) % m, j = (size_t)(t * 104729u + t / 3) % n;
    if (t < 4) i = t & 1 ? m - 1 : 0, j = t & 2 ? n - 1 : 0; /* the corners */
    double ref = 0, mag = 0;
    for (size_t p = 0; p < k; p++) {
      double x = ta ? A[p * lda + i] : A[i * lda + p], y = tb ? B[j * ldb + p] : B[p * ldb + j];
      ref += x * y, mag += fabs(x * y);
    }
    double err = fabs((double)C[i * n + j] - ref);
    if (!(err <= 1e-5 * mag + 1e-6)) {
      snprintf(buf, sizeof buf, "%c%c %zux%zux%zu: C[%zu,%zu] = %g, expected %g", ta ? 'T' : 'N',
               tb ? 'T' : 'N', m, n, k, i, j, (double)C[i * n + j], ref);
      why = buf;
      return false;
    }
  }
  return true;
}

// Applies "KERNEL:NAME=VALUE" tokens, one OverrideParameters call per kernel.
bool apply_tokens(const Device &d, const std::vector<std::string> &tokens) {
  std::map<std::string, std::unordered_map<std::string, size_t>> by_kernel;
  for (auto &t : tokens) {
    auto colon = t.find(':'), eq = t.find('=');
    if (colon == std::string::npos || eq == std::string::npos || eq < colon) {
      fprintf(stderr, "tune_clblast: bad parameter token %s\n", t.c_str());
      return false;
    }
    by_kernel[t.substr(0, colon)][t.substr(colon + 1, eq - colon - 1)] =
        strtoul(t.c_str() + eq + 1, nullptr, 10);
  }
  for (auto &k : by_kernel) {
    auto st = clblast::OverrideParameters(d.device, k.first, clblast::Precision::kSingle, k.second);
    if (st != clblast::StatusCode::kSuccess) {
      fprintf(stderr, "tune_clblast: OverrideParameters(%s) status %d\n", k.first.c_str(), (int)st);
      return false;
    }
  }
  return true;
}

// Best of 3 wall times (after a warm-up call) of a square NN Sgemm, in ms; -1 on failure.
double time_square(cl_context ctx, cl_command_queue q, size_t n) {
  cl_int rc;
  std::vector<float> host(n * n, 0.5f);
  cl_mem a = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, n * n * 4, host.data(), &rc);
  cl_mem b = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, n * n * 4, host.data(), &rc);
  cl_mem c = clCreateBuffer(ctx, CL_MEM_READ_WRITE, n * n * 4, nullptr, &rc);
  double best = -1;
  for (int r = 0; r < 4; r++) {
    auto t0 = std::chrono::steady_clock::now();
    auto st = clblast::Gemm<float>(clblast::Layout::kRowMajor, clblast::Transpose::kNo,
                                   clblast::Transpose::kNo, n, n, n, 1.0f, a, 0, n, b, 0, n, 0.0f,
                                   c, 0, n, &q, nullptr);
    if (st != clblast::StatusCode::kSuccess || clFinish(q) != CL_SUCCESS) {
      best = -1;
      break;
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0 && (best < 0 || ms < best)) best = ms;
  }
  clReleaseMemObject(a), clReleaseMemObject(b), clReleaseMemObject(c);
  return best;
}

const size_t kRoutineSizes[] = {128, 192, 256, 384, 512, 768, 1024};

// A context and an in-order queue on d; false (after a line on stderr starting with `who`)
// when OpenCL refuses either.
bool open_queue(const Device &d, const char *who, cl_context *ctx, cl_command_queue *q) {
  cl_int rc;
  cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)d.platform, 0};
  *ctx = clCreateContext(props, 1, &d.device, nullptr, nullptr, &rc);
  if (rc != CL_SUCCESS) return fprintf(stderr, "%s: clCreateContext %d\n", who, rc), false;
  *q = clCreateCommandQueue(*ctx, d.device, 0, &rc);
  if (rc != CL_SUCCESS) return fprintf(stderr, "%s: clCreateCommandQueue %d\n", who, rc), false;
  return true;
}

// The child process (overrides last for the process, so each question gets a fresh one):
//   check:KERNEL  apply the tokens, make CLBlast's Gemm take KERNEL for every size (GemmRoutine's
//                 XGEMM_MIN_INDIRECT_SIZE 0 for Xgemm, huge for XgemmDirect) and check shapes on
//                 all four transposes; exit 0 when all agree with the reference.
//   routine       apply the tokens and print "n direct_ms indirect_ms" per square size: what
//                 CLBlast's own routine tuner measures to set XGEMM_MIN_INDIRECT_SIZE.
int run_child(const Device &d, const std::string &mode, const std::vector<std::string> &tokens) {
  cl_context ctx;
  cl_command_queue q;
  if (!open_queue(d, "child", &ctx, &q)) return 1;
  if (!apply_tokens(d, tokens)) return 1;
  auto force = [&](size_t min_indirect) {
    std::unordered_map<std::string, size_t> r = {{"XGEMM_MIN_INDIRECT_SIZE", min_indirect}};
    return clblast::OverrideParameters(d.device, "GemmRoutine", clblast::Precision::kSingle, r) ==
           clblast::StatusCode::kSuccess;
  };
  if (mode == "routine") {
    for (size_t n : kRoutineSizes) {
      double t[2];
      for (int indirect = 0; indirect < 2; indirect++) {
        if (!force(indirect ? 0 : 1u << 20)) return 1;
        t[indirect] = time_square(ctx, q, n);
      }
      printf("%zu %.4f %.4f\n", n, t[0], t[1]);
      fflush(stdout);
    }
    return 0;
  }
  std::string kernel = mode.substr(mode.find(':') + 1);
  if (mode.rfind("check:", 0) != 0 || !force(kernel == "Xgemm" ? 0 : 1u << 20)) return 1;
  const size_t shapes[][3] = {{2, 2, 3},     {37, 45, 29},    {300, 200, 100},
                              {128, 256, 784}, {256, 784, 128}, {128, 10, 256},
                              {512, 512, 512}, {1024, 1024, 1024}};
  for (auto &sh : shapes)
    for (int t = 0; t < 4; t++) {
      if (sh[0] == 1024 && t) continue; /* the big one once */
      std::string why;
      if (!check_shape(ctx, q, sh[0], sh[1], sh[2], t & 1, t & 2, why)) {
        printf("%s\n", why.c_str());
        return 3;
      }
    }
  clReleaseCommandQueue(q);
  clReleaseContext(ctx);
  return 0;
}

// Runs `self --device INDEX --child MODE tokens...`; *out gets its stdout. Returns "" when it
// exited 0, else why not (its first line of output, or how it ended).
std::string run_in_child(int index, const std::string &mode, const std::vector<std::string> &tokens,
                         std::string *out = nullptr) {
  std::vector<std::string> args = {"tune_clblast", "--device", std::to_string(index), "--child", mode};
  args.insert(args.end(), tokens.begin(), tokens.end());
  std::string out_path = "/tmp/tune_clblast_child." + std::to_string((long)getpid());
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) dup2(fd, 1);
    std::vector<char *> av;
    for (auto &a : args) av.push_back(const_cast<char *>(a.c_str()));
    av.push_back(nullptr);
    execv("/proc/self/exe", av.data());
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return "could not run the child process";
  std::string text;
  if (FILE *f = fopen(out_path.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    fclose(f);
  }
  unlink(out_path.c_str());
  if (out) *out = text;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  std::string why = text.substr(0, text.find('\n'));
  if (why.empty())
    why = WIFSIGNALED(status) ? "it crashed (signal " + std::to_string(WTERMSIG(status)) + ")"
                              : "it failed (exit " + std::to_string(WEXITSTATUS(status)) + ")";
  return why;
}

std::vector<std::string> tokens_of(const std::string &kernel, const std::map<std::string, size_t> &p) {
  std::vector<std::string> t;
  for (auto &kv : p) t.push_back(kernel + ":" + kv.first + "=" + std::to_string(kv.second));
  return t;
}

}  // namespace

static void usage() {
  fprintf(stderr,
          "usage: tune_clblast [--device SEL] [--size N] [--direct-size N] [--fraction F]\n"
          "                    [--direct-fraction F] [--kernels Xgemm,XgemmDirect,GemmRoutine]\n"
          "                    [--out FILE]\n"
          "Tunes CLBlast's float Xgemm (at N^3, default 512) and XgemmDirect (default 256) with\n"
          "CLBlast's tuner, random search over the fraction F of each space (default 0.002\n"
          "and 0.01), checks each winner through Sgemm, then sets the size from which Sgemm\n"
          "takes Xgemm over XgemmDirect (GemmRoutine) from timings of both, and writes kdcl's\n"
          "per-device parameter file (default: in the kdcl cache dir).\n");
}


int main(int argc, char **argv) {
  const char *sel = nullptr, *out_arg = nullptr;
  size_t size = 512, direct_size = 256;
  double fraction = 0.002, direct_fraction = 0.01;
  std::string kernels = "Xgemm,XgemmDirect,GemmRoutine", child_mode;
  std::vector<std::string> child_tokens;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&]() -> const char * {
      if (i + 1 >= argc) {
        fprintf(stderr, "tune_clblast: error: %s needs a value\n", a.c_str());
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--device") sel = val();
    else if (a == "--size") size = strtoul(val(), nullptr, 10);
    else if (a == "--direct-size") direct_size = strtoul(val(), nullptr, 10);
    else if (a == "--fraction") fraction = atof(val());
    else if (a == "--direct-fraction") direct_fraction = atof(val());
    else if (a == "--kernels") kernels = val();
    else if (a == "--out") out_arg = val();
    else if (a == "--child") child_mode = val();
    else if (!child_mode.empty() && a.find(':') != std::string::npos) child_tokens.push_back(a);
    else if (a == "-h" || a == "--help") return usage(), 0;
    else {
      fprintf(stderr, "tune_clblast: error: unknown option %s\n", a.c_str());
      return usage(), 2;
    }
  }
  if (size < 64 || direct_size < 16 || !(fraction > 0 && fraction <= 1) ||
      !(direct_fraction > 0 && direct_fraction <= 1)) {
    fprintf(stderr, "tune_clblast: error: sizes must be >= 64 (direct >= 16), fractions in (0, 1]\n");
    return 2;
  }
  auto ds = list_devices();
  int pick = select_device(ds, sel);
  if (pick < 0) {
    fprintf(stderr, "tune_clblast: error: no OpenCL device matches '%s'\n", sel ? sel : "");
    return 1;
  }
  const Device &d = ds[pick];
  if (!child_mode.empty()) return run_child(d, child_mode, child_tokens);
  char keyhex[17];
  snprintf(keyhex, sizeof keyhex, "%016llx", (unsigned long long)device_key(d));
  std::string out;
  if (out_arg) {
    out = out_arg;
  } else {
    std::string dir = cache_dir();
    if (dir.empty()) {
      fprintf(stderr, "tune_clblast: error: no cache dir (set KDCL_CACHE_DIR or HOME) and no --out\n");
      return 1;
    }
    mkdir_parents(dir);
    out = dir + "/clblast-params-" + keyhex + ".json";
  }
  fprintf(stderr, "device: %s (%s, %s, driver %s), key %s\n", d.name.c_str(),
          d.platform_name.c_str(), d.version.c_str(), d.driver.c_str(), keyhex);

  cl_context ctx;
  cl_command_queue q;
  if (!open_queue(d, "tune_clblast: error", &ctx, &q)) return 1;

  struct Result {
    std::string kernel;
    size_t n;
    double fraction, seconds;
    std::map<std::string, size_t> params;
    std::string rejected; /* why the routine check refused it; "" when kept */
  };
  std::vector<Result> results;
  for (const char *kernel : {"Xgemm", "XgemmDirect"}) {
    if (("," + kernels + ",").find(std::string(",") + kernel + ",") == std::string::npos) continue;
    bool direct = !strcmp(kernel, "XgemmDirect");
    size_t n0 = direct ? direct_size : size;
    double f = direct ? direct_fraction : fraction;
    /* A winner the routine check refuses is recorded as rejected and CLBlast keeps its
     * defaults for the kernel. (Searching again at twice the size found the same GEMMK=1
     * winner on PoCL, in 12 minutes: not worth doing by default.) */
    for (size_t n : {n0}) {
      fprintf(stderr, "tuning %s at %zu^3, fraction %g of the search space ...\n", kernel, n, f);
      std::unordered_map<std::string, size_t> params;
      auto t0 = std::chrono::steady_clock::now();
      auto st = direct ? clblast::TuneXgemmDirect<float>(&q, n, n, n, f, params)
                       : clblast::TuneXgemm<float>(&q, n, n, n, f, params);
      double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (st != clblast::StatusCode::kSuccess || params.empty()) {
        fprintf(stderr, "tune_clblast: error: tuning %s failed with CLBlast status %d\n", kernel,
                (int)st);
        return 1;
      }
      Result r{kernel, n, f, sec, {}, ""};
      std::string line;
      for (auto &kv : params) {
        if (kv.first == "PRECISION") continue;
        r.params[kv.first] = kv.second;
      }
      for (auto &kv : r.params) line += " " + kv.first + "=" + std::to_string(kv.second);
      fprintf(stderr, "  %s best (%.0f s):%s\n", kernel, sec, line.c_str());
      r.rejected = run_in_child(pick, std::string("check:") + kernel, tokens_of(kernel, r.params));
      if (r.rejected.empty()) {
        fprintf(stderr, "  checked through CLBlast's Sgemm (4 transposes, 8 shapes): right\n");
        results.push_back(r);
        break;
      }
      fprintf(stderr, "  REJECTED: Sgemm with these parameters is wrong: %s\n", r.rejected.c_str());
      results.push_back(r);
    }
  }
  size_t kept = 0;
  std::vector<std::string> kept_tokens;
  for (auto &r : results)
    if (r.rejected.empty()) {
      kept++;
      auto t = tokens_of(r.kernel, r.params);
      kept_tokens.insert(kept_tokens.end(), t.begin(), t.end());
    }

  /* Which kernel Sgemm takes: XgemmDirect below XGEMM_MIN_INDIRECT_SIZE^3 multiply-adds, Xgemm
   * (with its pad/transpose kernels) from there. CLBlast's routine tuner sets it from timings of
   * both on squares; so does this, with the tuned kernels: the smallest size from which the
   * indirect one wins at every larger size measured (twice the largest when it never does). */
  std::string routine_json;
  if (("," + kernels + ",").find(",GemmRoutine,") != std::string::npos) {
    fprintf(stderr, "timing Sgemm through XgemmDirect and through Xgemm on squares ...\n");
    std::string text;
    std::string why = run_in_child(pick, "routine", kept_tokens, &text);
    if (!why.empty()) {
      fprintf(stderr, "  the routine timing failed (%s); CLBlast keeps its switch\n", why.c_str());
    } else {
      std::vector<std::array<double, 3>> rows;
      size_t n;
      double dms, ims;
      const char *p = text.c_str();
      int used;
      while (sscanf(p, "%zu %lf %lf%n", &n, &dms, &ims, &used) == 3) {
        rows.push_back({(double)n, dms, ims});
        p += used;
      }
      size_t min_indirect = 2 * kRoutineSizes[sizeof kRoutineSizes / sizeof kRoutineSizes[0] - 1];
      for (size_t i = rows.size(); i-- > 0;) {
        if (!(rows[i][2] > 0 && rows[i][1] > 0 && rows[i][2] < rows[i][1])) break;
        min_indirect = (size_t)rows[i][0];
      }
      std::string timings;
      for (auto &r : rows) {
        char b[96];
        snprintf(b, sizeof b, "%s[%.0f, %.3f, %.3f]", timings.empty() ? "" : ", ", r[0], r[1], r[2]);
        timings += b;
        fprintf(stderr, "  %4.0f^3: direct %8.3f ms, indirect %8.3f ms\n", r[0], r[1], r[2]);
      }
      fprintf(stderr, "  XGEMM_MIN_INDIRECT_SIZE=%zu\n", min_indirect);
      char b[256];
      snprintf(b, sizeof b,
               "    \"GemmRoutine\": {\"timings_ms\": {\"columns\": [\"n\", \"direct\", "
               "\"indirect\"], \"rows\": [");
      routine_json = b;
      routine_json += timings + "]},\n      \"parameters\": {\"XGEMM_MIN_INDIRECT_SIZE\": " +
                      std::to_string(min_indirect) + "}}";
      kept++;
    }
  }
  if (results.empty()) {
    fprintf(stderr, "tune_clblast: error: --kernels names neither Xgemm nor XgemmDirect\n");
    return 2;
  }

  std::string j = "{\n  \"format\": \"kdcl-clblast-params\",\n  \"format_version\": [1, 0],\n";
  j += "  \"platform\": \"" + json_escape(d.platform_name) + "\",\n";
  j += "  \"device\": \"" + json_escape(d.name) + "\",\n";
  j += "  \"device_version\": \"" + json_escape(d.version) + "\",\n";
  j += "  \"driver_version\": \"" + json_escape(d.driver) + "\",\n";
  j += "  \"precision\": \"float\",\n";
  j += "  \"tuner\": \"clblast::TuneXgemm / TuneXgemmDirect (libclblast), then checked through Sgemm\",\n";
  char buf[512];
  auto entry = [&](const Result &r, const char *indent) {
    snprintf(buf, sizeof buf,
             "%s\"%s\": {\"tuned_at\": [%zu, %zu, %zu], \"fraction\": %g, \"seconds\": %.0f,%s",
             indent, r.kernel.c_str(), r.n, r.n, r.n, r.fraction, r.seconds,
             r.rejected.empty() ? "" : " \"rejected\": \"");
    std::string e = buf;
    if (!r.rejected.empty()) e += json_escape(r.rejected) + "\",";
    e += "\n";
    e += indent;
    e += "  \"parameters\": {";
    size_t k = 0;
    for (auto &kv : r.params) {
      snprintf(buf, sizeof buf, "%s\"%s\": %zu", k++ ? ", " : "", kv.first.c_str(), kv.second);
      e += buf;
    }
    return e + "}}";
  };
  /* "kernels" holds what kdcl applies; "rejected" what failed the check, for the record. */
  for (int pass = 0; pass < 2; pass++) {
    j += pass ? ",\n  \"rejected\": [" : "  \"kernels\": {";
    size_t k = 0;
    for (auto &r : results) {
      if (r.rejected.empty() == (pass == 1)) continue;
      j += k++ ? ",\n" : "\n";
      j += pass ? "    {" + entry(r, "").substr(0) + "}" : entry(r, "    ");
    }
    if (!pass && !routine_json.empty()) j += (k++ ? ",\n" : "\n") + routine_json;
    j += k ? "\n  " : "";
    j += pass ? "]" : "}";
  }
  j += "\n}\n";
  if (!kept) {
    fprintf(stderr, "tune_clblast: every tuned configuration failed the check; nothing written "
                    "(CLBlast keeps its defaults)\n");
    return 1;
  }

  // Through a temporary file and rename, like every kdcl cache entry.
  std::string tmp = out + ".tmp." + std::to_string((long)getpid());
  FILE *f = fopen(tmp.c_str(), "wb");
  bool ok = f && fwrite(j.data(), 1, j.size(), f) == j.size();
  ok = f && fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
  ok = f && fclose(f) == 0 && ok;
  if (!ok || rename(tmp.c_str(), out.c_str()) != 0) {
    unlink(tmp.c_str());
    fprintf(stderr, "tune_clblast: error: cannot write %s\n", out.c_str());
    return 1;
  }
  printf("%s\n", out.c_str());
  clReleaseCommandQueue(q);
  clReleaseContext(ctx);
  return 0;
}
