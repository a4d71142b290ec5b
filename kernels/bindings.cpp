// pybind11 bindings of every kernel family.  Compiled twice from this one file:
// as minidl._cuda (kernels built by nvcc) and as minidl._emu (the same kernel sources
// built by g++ with the host-emulation header); MINIDL_MODULE_NAME is set by CMake.
//
// Each launcher <op> declared in kernels/<family>.h is bound as <op>_f32 and <op>_f64
// (its float and double instantiations), one MINIDL_DEF_F line per launcher; the
// geometry structs of launcher.h are bound as classes with named fields.  Launch
// errors raise RuntimeError naming the kernel.  No CUDA header is included here.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>  // the optimizers' address lists

#include <initializer_list>
#include <string>
#include <utility>

#include "batchnorm.h"
#include "conv.h"
#include "depthwise.h"
#include "elementwise.h"
#include "lrn.h"
#include "tensor_core.h"
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
// the 16-bit launchers (<launcher>_f16 / _bf16 wrappers, declared in the family's header)
#define MINIDL_DEF_H(m, fn)                                                            \
    m.def(#fn "_f16", &minidl::fn##_f16, py::call_guard<py::gil_scoped_release>()); \
    m.def(#fn "_bf16", &minidl::fn##_bf16, py::call_guard<py::gil_scoped_release>())

// A geometry struct of launcher.h as a Python class with named int fields; module_local
// because _cuda and _emu both bind these C++ types and may be loaded together.
template <class S>
void bind_geometry(py::module_& m, const char* name, std::initializer_list<std::pair<const char*, int S::*>> fields) {
    py::class_<S> cls(m, name, "kernels/launcher.h; filled from minidl.backend.geometry", py::module_local());
    cls.def(py::init<>());
    for (const auto& field : fields) cls.def_readwrite(field.first, field.second);
}
// {"f", &S::f} for the struct S in scope
#define MINIDL_FIELD(f) \
    { #f, &S::f }

#if MINIDL_IS_EMU
std::string emu_selftest(const std::string& name);  // kernels/emu/selftest.cpp
#endif
#if MINIDL_IS_EMU && !defined(MINIDL_EMU_SANITIZE)
#include "emu/profile.h"

// one dict per profiled launch, keys as the fields of LaunchProfile
py::list profile_stop() {
    py::list out;
    for (const auto& p : minidl_emu::profile::stop()) {
        py::dict d;
        d["name"] = p.name;
        d["grid"] = py::make_tuple(p.grid[0], p.grid[1], p.grid[2]);
        d["block"] = py::make_tuple(p.block[0], p.block[1], p.block[2]);
#define MINIDL_PROFILE_FIELD(f) d[#f] = p.f
        MINIDL_PROFILE_FIELD(dynamic_smem); MINIDL_PROFILE_FIELD(threads); MINIDL_PROFILE_FIELD(blocks);
        MINIDL_PROFILE_FIELD(load_instructions); MINIDL_PROFILE_FIELD(store_instructions);
        MINIDL_PROFILE_FIELD(load_bytes); MINIDL_PROFILE_FIELD(store_bytes);
        MINIDL_PROFILE_FIELD(load_sectors); MINIDL_PROFILE_FIELD(store_sectors);
        MINIDL_PROFILE_FIELD(ideal_load_bytes); MINIDL_PROFILE_FIELD(ideal_store_bytes);
        MINIDL_PROFILE_FIELD(shared_instructions); MINIDL_PROFILE_FIELD(shared_wavefronts);
        MINIDL_PROFILE_FIELD(shared_ideal_wavefronts); MINIDL_PROFILE_FIELD(shared_max_conflict);
        MINIDL_PROFILE_FIELD(warp_blocks); MINIDL_PROFILE_FIELD(divergent_blocks);
#undef MINIDL_PROFILE_FIELD
        out.append(d);
    }
    return out;
}
#endif

PYBIND11_MODULE(MINIDL_MODULE_NAME, m) {
    m.doc() = "minidl kernels (" MINIDL_BACKEND_DOC ")";
    m.attr("emulated") = py::bool_(MINIDL_IS_EMU);
#if MINIDL_IS_EMU
    m.def("emu_selftest", &emu_selftest, "run a self-test of the host emulation by name");
#endif
#if MINIDL_IS_EMU && !defined(MINIDL_EMU_SANITIZE)
    m.def("profile_start", &minidl_emu::profile::start, "record the memory accesses of every launch from now on");
    m.def("profile_stop", &profile_stop, "stop recording; one dict of counts per launch since profile_start");
#endif

    {
        using S = minidl::ConvGeometry;
        bind_geometry<S>(m, "ConvGeometry", {MINIDL_FIELD(N), MINIDL_FIELD(C), MINIDL_FIELD(H), MINIDL_FIELD(W),
                                             MINIDL_FIELD(O), MINIDL_FIELD(KH), MINIDL_FIELD(KW), MINIDL_FIELD(HO),
                                             MINIDL_FIELD(WO), MINIDL_FIELD(sh), MINIDL_FIELD(sw), MINIDL_FIELD(pt),
                                             MINIDL_FIELD(pb), MINIDL_FIELD(pl), MINIDL_FIELD(pr), MINIDL_FIELD(dh),
                                             MINIDL_FIELD(dw), MINIDL_FIELD(G)});
    }
    {
        using S = minidl::PoolGeometry;
        bind_geometry<S>(m, "PoolGeometry", {MINIDL_FIELD(N), MINIDL_FIELD(C), MINIDL_FIELD(H), MINIDL_FIELD(W),
                                             MINIDL_FIELD(OH), MINIDL_FIELD(OW), MINIDL_FIELD(KH), MINIDL_FIELD(KW),
                                             MINIDL_FIELD(sh), MINIDL_FIELD(sw), MINIDL_FIELD(ph), MINIDL_FIELD(pw)});
    }

    // elementwise.h
    MINIDL_DEF_F(m, relu);
    MINIDL_DEF_F(m, relu_backward);
    MINIDL_DEF_F(m, relu6);
    MINIDL_DEF_F(m, relu6_backward);
    MINIDL_DEF_F(m, sigmoid);
    MINIDL_DEF_F(m, sigmoid_backward);
    MINIDL_DEF_F(m, silu);
    MINIDL_DEF_F(m, silu_backward);
    MINIDL_DEF_F(m, add_relu);
    MINIDL_DEF_H(m, add_relu);
    MINIDL_DEF_H(m, bias_add);
    MINIDL_DEF_H(m, bias_add_backward);
    MINIDL_DEF_H(m, relu);
    MINIDL_DEF_H(m, relu_backward);
    MINIDL_DEF_H(m, relu6);
    MINIDL_DEF_H(m, relu6_backward);
    MINIDL_DEF_H(m, sigmoid);
    MINIDL_DEF_H(m, sigmoid_backward);
    MINIDL_DEF_H(m, silu);
    MINIDL_DEF_H(m, silu_backward);
    MINIDL_DEF_F(m, bias_add);
    MINIDL_DEF_F(m, bias_add_backward);
    m.def("channel_partials", &minidl::channel_partials);
    MINIDL_DEF_F(m, dropout_apply);
    MINIDL_DEF_F(m, dropout_backward);
    // optim.h
    MINIDL_DEF_F(m, sgd_update);
    MINIDL_DEF_F(m, adam_update);
    MINIDL_DEF_F(m, rmsprop_update);
    MINIDL_DEF_H(m, sgd_update);
    MINIDL_DEF_H(m, adam_update);
    MINIDL_DEF_H(m, rmsprop_update);
    MINIDL_DEF_F(m, amp_unscale);
    MINIDL_DEF_H(m, amp_unscale);
    // softmax.h
    MINIDL_DEF_F(m, softmax_forward);
    MINIDL_DEF_F(m, softmax_backward);
    MINIDL_DEF_F(m, cross_entropy_forward);
    MINIDL_DEF_F(m, cross_entropy_backward);
    MINIDL_DEF_H(m, softmax_forward);
    MINIDL_DEF_H(m, softmax_backward);
    MINIDL_DEF_H(m, cross_entropy_forward);
    // batchnorm.h
    MINIDL_DEF_F(m, batch_norm_train_forward);
    MINIDL_DEF_F(m, batch_norm_eval_forward);
    MINIDL_DEF_F(m, batch_norm_backward);
    MINIDL_DEF_H(m, batch_norm_train_forward);
    MINIDL_DEF_H(m, batch_norm_eval_forward);
    MINIDL_DEF_H(m, batch_norm_backward);
    MINIDL_DEF_F(m, batch_norm_update_running);
    // conv.h
    MINIDL_DEF_F(m, conv2d_im2col);
    MINIDL_DEF_F(m, conv2d_col2im);
    MINIDL_DEF_F(m, conv2d_igemm_forward);
    MINIDL_DEF_F(m, conv2d_igemm_backward_data);
    MINIDL_DEF_F(m, conv2d_igemm_backward_weight);
    // tensor cores: the float32 launchers are the TF32 ones
#define MINIDL_DEF_TC(pass)                                                                               \
    m.def("conv2d_tc_" #pass "_f32", &minidl::conv2d_tc_##pass##_tf32, py::call_guard<py::gil_scoped_release>()); \
    MINIDL_DEF_H(m, conv2d_tc_##pass)
    MINIDL_DEF_TC(forward);
    MINIDL_DEF_TC(backward_data);
    MINIDL_DEF_TC(backward_weight);
#undef MINIDL_DEF_TC
    // depthwise.h
    MINIDL_DEF_F(m, depthwise_conv2d_forward);
    MINIDL_DEF_F(m, depthwise_conv2d_backward_data);
    MINIDL_DEF_F(m, depthwise_conv2d_backward_weight);
    MINIDL_DEF_H(m, depthwise_conv2d_forward);
    MINIDL_DEF_H(m, depthwise_conv2d_backward_data);
    MINIDL_DEF_H(m, depthwise_conv2d_backward_weight);
    // pool.h
    MINIDL_DEF_F(m, max_pool2d_forward);
    MINIDL_DEF_F(m, max_pool2d_backward);
    MINIDL_DEF_F(m, avg_pool2d_forward);
    MINIDL_DEF_F(m, avg_pool2d_backward);
    MINIDL_DEF_F(m, adaptive_avg_pool2d_forward);
    MINIDL_DEF_F(m, adaptive_avg_pool2d_backward);
    MINIDL_DEF_F(m, adaptive_avg_pool2d_forward_1x1);
    MINIDL_DEF_F(m, adaptive_avg_pool2d_backward_1x1);
    MINIDL_DEF_H(m, max_pool2d_forward);
    MINIDL_DEF_H(m, max_pool2d_backward);
    MINIDL_DEF_H(m, avg_pool2d_forward);
    MINIDL_DEF_H(m, avg_pool2d_backward);
    MINIDL_DEF_H(m, adaptive_avg_pool2d_forward);
    MINIDL_DEF_H(m, adaptive_avg_pool2d_backward);
    MINIDL_DEF_H(m, adaptive_avg_pool2d_forward_1x1);
    MINIDL_DEF_H(m, adaptive_avg_pool2d_backward_1x1);
    // lrn.h
    MINIDL_DEF_F(m, lrn_forward);
    MINIDL_DEF_F(m, lrn_backward);
    MINIDL_DEF_H(m, lrn_forward);
    MINIDL_DEF_H(m, lrn_backward);
    // tensor_core.h (tests only)
    m.def("tensor_core_probe", &minidl::tensor_core_probe, py::call_guard<py::gil_scoped_release>());
}
