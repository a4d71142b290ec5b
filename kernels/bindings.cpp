// pybind11 bindings of every kernel family.  Compiled twice from this one file:
// as minidl._cuda (kernels built by nvcc) and as minidl._emu (the same kernel sources
// built by g++ with the host-emulation header); MINIDL_MODULE_NAME is set by CMake.
//
// Naming: <family>_<op>_f32 / _f64 (float / double instantiations of one template
// launcher).  Arguments: device pointers as integers (CuPy a.data.ptr, NumPy
// a.ctypes.data), then sizes and scalars, then the stream handle (an integer; 0 is
// the default stream; ignored by _emu).  Launch errors raise RuntimeError naming the
// kernel.  This file does not include CUDA headers: the launchers are declared here.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#ifndef MINIDL_MODULE_NAME
#error "MINIDL_MODULE_NAME must be defined (_cuda or _emu)"
#endif

namespace py = pybind11;
using uptr = std::uintptr_t;

// Binds name_f32 -> fn<float> and name_f64 -> fn<double>.
#define MINIDL_DEF_F(m, fn) \
    m.def(#fn "_f32", &minidl::fn<float>, py::call_guard<py::gil_scoped_release>()); \
    m.def(#fn "_f64", &minidl::fn<double>, py::call_guard<py::gil_scoped_release>())

namespace minidl {
// ---------------------------------------------------------------- elementwise.cu
#define MINIDL_DECL_UNARY(op)                                                            \
    template <class T> void elementwise_##op##_forward(uptr x, uptr y, long long n, uptr stream); \
    template <class T> void elementwise_##op##_backward(uptr xy, uptr gy, uptr gx, long long n, uptr stream);
MINIDL_DECL_UNARY(relu)
MINIDL_DECL_UNARY(relu6)
MINIDL_DECL_UNARY(sigmoid)
MINIDL_DECL_UNARY(silu)
template <class T> void elementwise_bias_add(uptr x, uptr b, uptr y, int N, int C, long long S, uptr stream);
template <class T> void elementwise_bias_add_backward(uptr gy, uptr db, int N, int C, long long S, uptr stream);
template <class T>
void elementwise_dropout_forward(uptr x, uptr u, uptr y, uptr mask, long long n, double p, uptr stream);
template <class T> void elementwise_dropout_backward(uptr gy, uptr mask, uptr gx, long long n, uptr stream);

// ---------------------------------------------------------------- optim.cu
template <class T>
void optim_sgd_update(uptr param, uptr grad, uptr buf, long long n, double lr, double momentum, double dampening,
                      double weight_decay, bool nesterov, bool first_step, uptr stream);

// ---------------------------------------------------------------- softmax.cu
template <class T> void softmax_forward(uptr x, uptr y, int N, int K, bool log, uptr stream);
template <class T> void softmax_backward(uptr y, uptr gy, uptr gx, int N, int K, bool log, uptr stream);
template <class T>
void softmax_cross_entropy_forward(uptr logits, uptr labels, uptr loss, uptr logp, int N, int K, double smoothing,
                                   uptr stream);
template <class T>
void softmax_cross_entropy_backward(uptr logp, uptr labels, uptr grad_row, uptr dx, int N, int K, double smoothing,
                                    uptr stream);

// ---------------------------------------------------------------- batchnorm.cu
template <class T>
void batchnorm_train_forward(uptr x, uptr gamma, uptr beta, uptr y, uptr mean, uptr var, int N, int C, long long S,
                             double eps, uptr stream);
template <class T>
void batchnorm_eval_forward(uptr x, uptr gamma, uptr beta, uptr mean, uptr var, uptr y, int N, int C, long long S,
                            double eps, uptr stream);
template <class T>
void batchnorm_backward(uptr x, uptr gy, uptr gamma, uptr mean, uptr var, uptr dx, uptr dgamma, uptr dbeta, int N,
                        int C, long long S, double eps, uptr stream);
template <class T>
void batchnorm_update_running(uptr running_mean, uptr running_var, uptr mean, uptr var, int C, double momentum,
                              long long count, uptr stream);

// ================================================================ conv helper: declarations
// (conv, depthwise, pool, lrn launchers: declare them here)
#define MINIDL_CONV_GEOM_TYPES int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int
#define MINIDL_POOL_GEOM_TYPES int, int, int, int, int, int, int, int, int, int, int
// conv.cu: geometry (N, C, H, W, O, KH, KW, HO, WO, sh, sw, pt, pl, dh, dw, G)
template <class T> void conv_im2col(uptr x, uptr col, MINIDL_CONV_GEOM_TYPES, int n0, int n_count, uptr stream);
template <class T> void conv_col2im(uptr col, uptr dx, MINIDL_CONV_GEOM_TYPES, int n0, int n_count, uptr stream);
template <class T> void conv_igemm_forward(uptr x, uptr w, uptr y, MINIDL_CONV_GEOM_TYPES, uptr stream);
template <class T> void conv_igemm_backward_data(uptr gy, uptr w, uptr dx, MINIDL_CONV_GEOM_TYPES, uptr stream);
template <class T>
void conv_igemm_backward_weight(uptr x, uptr gy, uptr ws, MINIDL_CONV_GEOM_TYPES, int splits, uptr stream);
// depthwise.cu: the same geometry, G == C
template <class T> void depthwise_forward(uptr x, uptr w, uptr y, MINIDL_CONV_GEOM_TYPES, uptr stream);
template <class T> void depthwise_backward_data(uptr gy, uptr w, uptr dx, MINIDL_CONV_GEOM_TYPES, uptr stream);
template <class T> void depthwise_backward_weight(uptr x, uptr gy, uptr dw, MINIDL_CONV_GEOM_TYPES, uptr stream);
// pool.cu: geometry (P = N*C, H, W, OH, OW, kh, kw, sh, sw, ph, pw); argmax int32
template <class T> void pool_max_forward(uptr x, uptr y, uptr argmax, MINIDL_POOL_GEOM_TYPES, uptr stream);
template <class T> void pool_max_backward(uptr gy, uptr argmax, uptr dx, MINIDL_POOL_GEOM_TYPES, uptr stream);
template <class T> void pool_avg_forward(uptr x, uptr y, MINIDL_POOL_GEOM_TYPES, bool count_include_pad, uptr stream);
template <class T>
void pool_avg_backward(uptr gy, uptr dx, MINIDL_POOL_GEOM_TYPES, bool count_include_pad, uptr stream);
template <class T> void pool_adaptive_avg_forward(uptr x, uptr y, int P, int H, int W, int OH, int OW, uptr stream);
template <class T> void pool_adaptive_avg_backward(uptr gy, uptr dx, int P, int H, int W, int OH, int OW, uptr stream);
template <class T> void pool_global_avg_forward(uptr x, uptr y, int P, int HW, uptr stream);
// lrn.cu
template <class T>
void lrn_forward(uptr x, uptr y, uptr scale, int N, int C, int HW, int size, double alpha, double beta, double k,
                 uptr stream);
template <class T>
void lrn_backward(uptr x, uptr y, uptr scale, uptr gy, uptr dx, int N, int C, int HW, int size, double alpha,
                  double beta, uptr stream);
// ================================================================ end conv helper: declarations
}  // namespace minidl

#if MINIDL_IS_EMU
std::string emu_selftest(const std::string& name);  // kernels/emu/selftest.cpp
#endif

PYBIND11_MODULE(MINIDL_MODULE_NAME, m) {
    m.doc() = "minidl kernels (" MINIDL_BACKEND_DOC ")";
    m.attr("emulated") = py::bool_(MINIDL_IS_EMU);
#if MINIDL_IS_EMU
    m.def("emu_selftest", &emu_selftest, "run a self-test of the host emulation by name");
#endif

    // elementwise
    MINIDL_DEF_F(m, elementwise_relu_forward);
    MINIDL_DEF_F(m, elementwise_relu_backward);
    MINIDL_DEF_F(m, elementwise_relu6_forward);
    MINIDL_DEF_F(m, elementwise_relu6_backward);
    MINIDL_DEF_F(m, elementwise_sigmoid_forward);
    MINIDL_DEF_F(m, elementwise_sigmoid_backward);
    MINIDL_DEF_F(m, elementwise_silu_forward);
    MINIDL_DEF_F(m, elementwise_silu_backward);
    MINIDL_DEF_F(m, elementwise_bias_add);
    MINIDL_DEF_F(m, elementwise_bias_add_backward);
    MINIDL_DEF_F(m, elementwise_dropout_forward);
    MINIDL_DEF_F(m, elementwise_dropout_backward);
    // optim
    MINIDL_DEF_F(m, optim_sgd_update);
    // softmax
    MINIDL_DEF_F(m, softmax_forward);
    MINIDL_DEF_F(m, softmax_backward);
    MINIDL_DEF_F(m, softmax_cross_entropy_forward);
    MINIDL_DEF_F(m, softmax_cross_entropy_backward);
    // batchnorm
    MINIDL_DEF_F(m, batchnorm_train_forward);
    MINIDL_DEF_F(m, batchnorm_eval_forward);
    MINIDL_DEF_F(m, batchnorm_backward);
    MINIDL_DEF_F(m, batchnorm_update_running);

    // ============================================================ conv helper: m.def block
    // (conv, depthwise, pool, lrn: MINIDL_DEF_F(m, conv_...); ...)
    MINIDL_DEF_F(m, conv_im2col);
    MINIDL_DEF_F(m, conv_col2im);
    MINIDL_DEF_F(m, conv_igemm_forward);
    MINIDL_DEF_F(m, conv_igemm_backward_data);
    MINIDL_DEF_F(m, conv_igemm_backward_weight);
    MINIDL_DEF_F(m, depthwise_forward);
    MINIDL_DEF_F(m, depthwise_backward_data);
    MINIDL_DEF_F(m, depthwise_backward_weight);
    MINIDL_DEF_F(m, pool_max_forward);
    MINIDL_DEF_F(m, pool_max_backward);
    MINIDL_DEF_F(m, pool_avg_forward);
    MINIDL_DEF_F(m, pool_avg_backward);
    MINIDL_DEF_F(m, pool_adaptive_avg_forward);
    MINIDL_DEF_F(m, pool_adaptive_avg_backward);
    MINIDL_DEF_F(m, pool_global_avg_forward);
    MINIDL_DEF_F(m, lrn_forward);
    MINIDL_DEF_F(m, lrn_backward);
    // ============================================================ end conv helper: m.def block
}
