# Sourced by the README's two commands (scripts/train_fashion_mnist.sh, scripts/test.sh):
# chooses the Python environment to install minidl into and sets PYTHON to its interpreter.
#  - Inside an active virtual or conda environment: that environment's python3, as is.
#  - Otherwise: the project environment .venv/ at the repository root, created with
#    `python3 -m venv` on first use and reused afterwards. Distribution Pythons (Debian 12,
#    Ubuntu 23.04+, Fedora) refuse `pip install` outside a virtual environment (PEP 668).
# Where the venv module is missing (Debian's python3-venv), root installs it with apt;
# anyone else gets the exact command and a non-zero exit.
minidl_python_env() {
    local repo="$1"
    if [ -n "${VIRTUAL_ENV:-}" ] || [ -n "${CONDA_PREFIX:-}" ]; then
        PYTHON="$(command -v python3 || command -v python)"
        echo "minidl: using the active environment ($PYTHON)"
        return 0
    fi
    local venv="$repo/.venv"
    if [ ! -x "$venv/bin/python3" ]; then
        if ! command -v python3 >/dev/null; then
            echo "minidl: python3 not found; install Python 3.10 or newer (Debian/Ubuntu: sudo apt-get install python3 python3-venv)" >&2
            return 1
        fi
        if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
            local pkg="python3-venv"
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
                # Debian names it per minor version too (python3.11-venv); python3-venv pulls it in
                apt-get update && apt-get install -y "$pkg" || return 1
            else
                echo "minidl: Python's venv module is missing; install it with: sudo apt-get install -y $pkg" >&2
                return 1
            fi
        fi
        echo "minidl: creating the project environment $venv"
        rm -rf "$venv"  # a half-made one from an interrupted attempt
        python3 -m venv "$venv" || return 1
    fi
    PYTHON="$venv/bin/python3"
    echo "minidl: using $venv (activate it with: source .venv/bin/activate)"
}
