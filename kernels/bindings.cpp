// pybind11 bindings of every kernel family.  Compiled twice from this one file:
// as minidl._cuda (kernels built by nvcc) and as minidl._emu (the same kernel sources
// built by g++ with the host-emulation header); MINIDL_MODULE_NAME is set by CMake.
//
// Each launcher <op> declared in kernels/<family>.h is bound as <op>_f32 and <op>_f64
// (its float and double instantiations), one MINIDL_DEF_F line per launcher; the
// geometry structs of launcher.h are bound as classes with named fields.  Launch
// errors raise RuntimeError naming the kernel.  No CUDA header is included here.
#include <pybind11/pybind11.h>

#include <string>

#include "batchnorm.h"
#include "conv.h"
#include "depthwise.h"
#include "elementwise.h"
#include "lrn.h"
#include "optim.h"
#include "pool.h"
#include "softmax.h"

#ifndef MINIDL_MODULE_NAME
#error "MINIDL_MODULE_NAME must be defined (_cuda or _emu)"
#endif

namespace py = pybind11;

// Binds name_f32 -> fn<float> and name_f64 -> fn<double>.
#define MINIDL_DEF_F(m, fn)                                                               \
    m.def(#fn "_f32", &minidl::fn<float>, py::call_guard<py::gil_scoped_release>()); \
    m.def(#fn "_f64", &minidl::fn<double>, py::call_guard<py::gil_scoped_release>())

#define MINIDL_FIELD(cls, field) def_readwrite(#field, &cls::field)

#if MINIDL_IS_EMU
std::string emu_selftest(const std::string& name);  // kernels/emu/selftest.cpp
#endif

PYBIND11_MODULE(MINIDL_MODULE_NAME, m) {
    m.doc() = "minidl kernels (" MINIDL_BACKEND_DOC ")";
    m.attr("emulated") = py::bool_(MINIDL_IS_EMU);
#if MINIDL_IS_EMU
    m.def("emu_selftest", &emu_selftest, "run a self-test of the host emulation by name");
#endif

    using minidl::ConvGeometry;
    using minidl::PoolGeometry;
    // module_local: _cuda and _emu both bind these C++ types and may be loaded together
    py::class_<ConvGeometry>(m, "ConvGeometry", "kernels/launcher.h; filled from minidl.backend.geometry",
                             py::module_local())
        .def(py::init<>())
        .MINIDL_FIELD(ConvGeometry, N).MINIDL_FIELD(ConvGeometry, C).MINIDL_FIELD(ConvGeometry, H)
        .MINIDL_FIELD(ConvGeometry, W).MINIDL_FIELD(ConvGeometry, O).MINIDL_FIELD(ConvGeometry, KH)
        .MINIDL_FIELD(ConvGeometry, KW).MINIDL_FIELD(ConvGeometry, HO).MINIDL_FIELD(ConvGeometry, WO)
        .MINIDL_FIELD(ConvGeometry, sh).MINIDL_FIELD(ConvGeometry, sw).MINIDL_FIELD(ConvGeometry, pt)
        .MINIDL_FIELD(ConvGeometry, pb).MINIDL_FIELD(ConvGeometry, pl).MINIDL_FIELD(ConvGeometry, pr)
        .MINIDL_FIELD(ConvGeometry, dh).MINIDL_FIELD(ConvGeometry, dw).MINIDL_FIELD(ConvGeometry, G);
    py::class_<PoolGeometry>(m, "PoolGeometry", "kernels/launcher.h; filled from minidl.backend.geometry",
                             py::module_local())
        .def(py::init<>())
        .MINIDL_FIELD(PoolGeometry, N).MINIDL_FIELD(PoolGeometry, C).MINIDL_FIELD(PoolGeometry, H)
        .MINIDL_FIELD(PoolGeometry, W).MINIDL_FIELD(PoolGeometry, OH).MINIDL_FIELD(PoolGeometry, OW)
        .MINIDL_FIELD(PoolGeometry, KH).MINIDL_FIELD(PoolGeometry, KW).MINIDL_FIELD(PoolGeometry, sh)
        .MINIDL_FIELD(PoolGeometry, sw).MINIDL_FIELD(PoolGeometry, ph).MINIDL_FIELD(PoolGeometry, pw);

    // elementwise.h
    MINIDL_DEF_F(m, relu);
    MINIDL_DEF_F(m, relu_backward);
    MINIDL_DEF_F(m, relu6);
    MINIDL_DEF_F(m, relu6_backward);
    MINIDL_DEF_F(m, sigmoid);
    MINIDL_DEF_F(m, sigmoid_backward);
    MINIDL_DEF_F(m, silu);
    MINIDL_DEF_F(m, silu_backward);
    MINIDL_DEF_F(m, bias_add);
    MINIDL_DEF_F(m, bias_add_backward);
    MINIDL_DEF_F(m, dropout_apply);
    MINIDL_DEF_F(m, dropout_backward);
    // optim.h
    MINIDL_DEF_F(m, sgd_update);
    // softmax.h
    MINIDL_DEF_F(m, softmax_forward);
    MINIDL_DEF_F(m, softmax_backward);
    MINIDL_DEF_F(m, cross_entropy_forward);
    MINIDL_DEF_F(m, cross_entropy_backward);
    // batchnorm.h
    MINIDL_DEF_F(m, batch_norm_train_forward);
    MINIDL_DEF_F(m, batch_norm_eval_forward);
    MINIDL_DEF_F(m, batch_norm_backward);
    MINIDL_DEF_F(m, batch_norm_update_running);
    // conv.h
    MINIDL_DEF_F(m, conv2d_im2col);
    MINIDL_DEF_F(m, conv2d_col2im);
    MINIDL_DEF_F(m, conv2d_igemm_forward);
    MINIDL_DEF_F(m, conv2d_igemm_backward_data);
    MINIDL_DEF_F(m, conv2d_igemm_backward_weight);
    // depthwise.h
    MINIDL_DEF_F(m, depthwise_conv2d_forward);
    MINIDL_DEF_F(m, depthwise_conv2d_backward_data);
    MINIDL_DEF_F(m, depthwise_conv2d_backward_weight);
    // pool.h
    MINIDL_DEF_F(m, max_pool2d_forward);
    MINIDL_DEF_F(m, max_pool2d_backward);
    MINIDL_DEF_F(m, avg_pool2d_forward);
    MINIDL_DEF_F(m, avg_pool2d_backward);
    MINIDL_DEF_F(m, adaptive_avg_pool2d_forward);
    MINIDL_DEF_F(m, adaptive_avg_pool2d_backward);
    MINIDL_DEF_F(m, adaptive_avg_pool2d_forward_1x1);
    // lrn.h
    MINIDL_DEF_F(m, lrn_forward);
    MINIDL_DEF_F(m, lrn_backward);
}
