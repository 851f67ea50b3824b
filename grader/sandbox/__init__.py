"""Where student code runs: a bubblewrap sandbox around each student's kernel.

``bubblewrap.py`` (the sandbox and ``SandboxedKernelManager``), ``cgroups.py`` (limits for a
whole submission), ``sandbox_launch.py`` (the sandbox's first process: per-process limits,
its own uid), ``sandbox_kernel.py`` (the isolated kernel start) and ``kernel_guard.py`` (the
output cap inside the kernel). The last three run inside the sandbox, loaded by their paths.
"""
