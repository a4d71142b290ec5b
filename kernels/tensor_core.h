// Host launcher of the tensor-core instruction probe (kernels/tensor_core.cu): one warp
// runs one instruction of tensor_core.cuh on operands laid out by the PTX ISA's
// fragment tables and writes what each lane holds, for tests/kernels/test_tensor_core.py
// (the emulation and a GPU checked against the same tables).  Bound as
// tensor_core_probe; `kind` names the instruction (tensor_core.cu).
#pragma once

#include "launcher.h"

namespace minidl {

void tensor_core_probe(int kind, uptr a, uptr b, uptr c, uptr d, uptr stream);

}  // namespace minidl
