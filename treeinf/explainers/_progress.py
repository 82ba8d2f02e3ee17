"""Progress output of the estimators' ``verbose`` mode.

Nothing here changes a result: without ``verbose`` the helpers yield one
range (the kernels run in one call) and print nothing.
"""
import os
import sys

import numba

#: modules whose numba kernels the estimators call
_KERNEL_MODULES = ("treeinf._kernels.coleaf", "treeinf._kernels.fixed",
                   "treeinf._kernels.similarity", "treeinf._kernels.stats",
                   "treeinf._kernels.traversal", "treeinf._kernels.trex", "treeinf._losses")

#: whether an explainer was fitted in this process (the notice concerns the first)
_first_fit_done = False


def row_chunks(total, verbose, desc, step=1):
    """(start, stop) ranges covering rows 0..total-1 of a long kernel loop.

    Without ``verbose`` one range, so the kernel runs in one call. With it,
    about 100 ranges (multiples of ``step`` rows, at least ``step`` per
    thread) and a tqdm progress bar that advances after each.
    """
    if not verbose:
        yield 0, total
        return
    from tqdm.auto import tqdm
    step = step * numba.get_num_threads()
    size = -(-max(step, -(-total // 100)) // step) * step
    with tqdm(total=total, desc=desc, unit="row") as bar:
        for start in range(0, total, size):
            stop = min(start + size, total)
            yield start, stop
            bar.update(stop - start)


def blocks(slices, verbose, desc, total):
    """Iterate ``slices`` (slices of ``total`` rows), with a bar in verbose mode."""
    if not verbose:
        yield from slices
        return
    from tqdm.auto import tqdm
    with tqdm(total=total, desc=desc, unit="row") as bar:
        for s in slices:
            yield s
            bar.update(s.stop - s.start)


def _uncached_kernels():
    """Names of kernels neither loaded in this process nor in numba's disk cache."""
    import importlib
    missing = []
    for name in _KERNEL_MODULES:
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if not isinstance(obj, numba.core.registry.CPUDispatcher) or obj.signatures:
                continue
            try:  # numba's cache index of the function (private API: best effort)
                cached = os.path.exists(obj._cache._cache_file._index_path)
            except AttributeError:
                cached = True
            if not cached:
                missing.append(attr)
    return missing


def compile_notice(verbose):
    """Print one line to stderr before numba compiles treeinf's kernels.

    Called at every ``fit``; prints only at the first fit of the process,
    only with ``verbose``, and only when some kernel has neither been
    compiled in this process nor cached on disk (the first run on a machine
    or after an upgrade), since that fit is the one that compiles.
    """
    global _first_fit_done
    if _first_fit_done:
        return
    _first_fit_done = True
    if not verbose:
        return
    missing = _uncached_kernels()
    if missing:
        print(f"treeinf: compiling {len(missing)} numba kernels on first use; this takes "
              "up to a minute once, later runs load them from numba's cache.",
              file=sys.stderr, flush=True)
