"""Every backend implements every op of the contract (minidl/backend/base.py), or
inherits its generic version."""
from __future__ import annotations

import pytest

from minidl.backend.base import CONTRACT, GENERIC, Backend
from minidl.backend.cpu import CpuBackend
from minidl.backend.kernel import KernelBackend

OPS = [op for ops in CONTRACT.values() for op in ops]


def test_contract_lists_every_op_once_and_every_method_of_backend():
    assert len(OPS) == len(set(OPS)), "an op is listed twice in CONTRACT"
    methods = {name for name, v in vars(Backend).items() if callable(v) and not name.startswith("_")}
    assert methods == set(OPS)
    assert GENERIC == set(OPS) - Backend.__abstractmethods__


@pytest.mark.parametrize("cls", [CpuBackend, KernelBackend], ids=lambda c: c.__name__)
def test_backend_implements_every_contract_op(cls):
    missing = [op for op in OPS if op not in GENERIC and getattr(cls, op) is getattr(Backend, op)]
    assert missing == [], f"{cls.__name__} does not implement {', '.join(missing)} (and they are not in GENERIC)"
    assert not cls.__abstractmethods__

