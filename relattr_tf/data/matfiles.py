"""Reading MATLAB .mat files (v5 with scipy, v7.3/HDF5 with h5py) into plain numpy values.

v7.3 files store every matrix transposed (an N x C matrix reads as (C, N)), cells as object
references into `#refs#`, and strings as uint16 code points; `load_mat` undoes all three so both
versions come back in MATLAB's orientation: matrices as arrays, cells as object arrays of the
cell's shape, strings as `str`. Errors name the file and the variable.
"""
import io

import h5py
import numpy as np
import scipy.io


class MatError(ValueError):
    """A .mat file that does not hold what the data set's documentation says."""


def _read_bytes(path):
    from apache_beam.io.filesystems import FileSystems
    try:
        with FileSystems.open(path, compression_type="uncompressed") as f:
            return f.read()
    except Exception as e:  # FileSystems raises IOError or BeamIOError, depending on scheme
        raise MatError(f"{path}: cannot read ({type(e).__name__}: {str(e).splitlines()[0]})") \
            from None


def _h5_value(f, obj):
    if isinstance(obj, h5py.Group):
        return {k: _h5_value(f, obj[k]) for k in obj if not k.startswith("#")}
    kind = obj.attrs.get("MATLAB_class", b"")
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    data = obj[()]
    if kind == "char":
        return "".join(chr(c) for c in np.asarray(data).T.ravel())
    if kind == "cell" or (isinstance(data, np.ndarray) and data.dtype == object):
        refs = np.asarray(data).T  # back to MATLAB's orientation
        out = np.empty(refs.shape, dtype=object)
        for index in np.ndindex(refs.shape):
            out[index] = _h5_value(f, f[refs[index]])
        return out
    if obj.attrs.get("MATLAB_empty", 0):
        return np.zeros((0,))
    return np.asarray(data).T


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_hdf5(data):
    """HDF5 files start with a signature at 0 or after a user block (MATLAB: 512 bytes)."""
    return any(data[k:k + 8] == HDF5_SIGNATURE for k in (0, 512, 1024, 2048, 4096))


def load_mat(path, data=None):
    """{variable: value} of a v5 or v7.3 .mat file (read through Beam's FileSystems)."""
    data = _read_bytes(path) if data is None else data
    if is_hdf5(data):
        try:
            with h5py.File(io.BytesIO(data), "r") as f:
                return {k: _h5_value(f, f[k]) for k in f if not k.startswith("#")}
        except (OSError, KeyError, ValueError) as e:  # truncated or damaged HDF5
            raise MatError(f"{path}: not a readable MATLAB v7.3 (HDF5) file "
                           f"({type(e).__name__}: {(str(e).splitlines() or [''])[0]})") from None
    try:
        return scipy.io.loadmat(io.BytesIO(data))
    except Exception as e:
        raise MatError(f"{path}: not a readable MATLAB file ({type(e).__name__}: {e})") from None


def variable(mat, name, path):
    if name not in mat:
        found = ", ".join(sorted(k for k in mat if not k.startswith("__")))
        raise MatError(f"{path}: variable {name!r} missing (found: {found})")
    return mat[name]


def to_str(value):
    """A MATLAB string as loaded by scipy (1-element array) or h5py (str)."""
    while isinstance(value, np.ndarray):
        if value.size != 1:
            if value.dtype.kind in "US":
                return "".join(value.ravel().tolist())
            raise ValueError(f"expected one string, got an array of shape {value.shape}")
        value = value.ravel()[0]
    return str(value)


def strings(value):
    """A cell array of strings, flattened in MATLAB order."""
    return [to_str(v) for v in np.asarray(value, dtype=object).ravel(order="F")]


def cells(value):
    """A cell array's elements, flattened in MATLAB order."""
    return list(np.asarray(value, dtype=object).ravel(order="F"))


def matrix(value, path, name, columns=None, min_columns=None):
    """A numeric matrix as int64/float64 with a checked column count (MATLAB orientation)."""
    array = np.asarray(value)
    if array.dtype == object or array.ndim != 2:
        raise MatError(f"{path}: {name} should be a numeric matrix, got shape {array.shape} "
                       f"and dtype {array.dtype}")
    if columns is not None and array.shape[1] != columns:
        raise MatError(f"{path}: {name} has {array.shape[1]} columns, expected {columns}")
    if min_columns is not None and array.shape[1] < min_columns:
        raise MatError(f"{path}: {name} has {array.shape[1]} columns, expected at least "
                       f"{min_columns}")
    # MATLAB saves integer-valued doubles as small unsigned ints: widen before any arithmetic.
    return array.astype(np.float64)


def index_vector(value):
    """A MATLAB index vector (any orientation, any integer or float type) as 1-D int64."""
    return np.asarray(value).astype(np.int64).ravel()
