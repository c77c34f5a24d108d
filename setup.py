"""relattr_tf: relative attributes (DACRL, ATTIC) in Keras 3 / TensorFlow with Apache Beam data jobs."""
import setuptools

setuptools.setup(
    name="relattr_tf",
    version="0.1.0",
    description="Relative-attribute ranking (DACRL, ATTIC) with Keras 3, TensorFlow and Apache Beam",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10,<3.13",
    packages=setuptools.find_packages(include=["relattr_tf", "relattr_tf.*", "beam_jobs", "beam_jobs.*"]),
    install_requires=[
        # GPU users: install tensorflow[and-cuda]==2.21.* first, then this package with --no-deps
        # or after `pip uninstall tensorflow-cpu` (see docs/getting-started.md).
        "tensorflow-cpu>=2.21,<2.22",
        "keras>=3.15,<3.16",
        "apache-beam>=2.77,<2.78",
        "google-crc32c>=1.5",  # WriteToTFRecord needs a crc32c implementation
        "tensorboard>=2.21,<2.22",
        "absl-py>=2.1",
        "numpy>=2.0,<3",
        "scipy>=1.13",
        "h5py>=3.10",
        "pillow>=10",
        "matplotlib>=3.8",  # the ATTIC learning-curve plot, the heat maps' colours, notebooks
    ],
    extras_require={
        # pytest-xdist runs the tests in two processes; dask runs the Beam jobs on a local
        # cluster (tests/test_dask.py); papermill and ipykernel execute the notebooks in the
        # tests; mkdocs-material builds the docs site (tests/test_docs.py: mkdocs build --strict)
        "test": ["pytest>=8", "pytest-xdist>=3.5", "dask[distributed]>=2024.4", "papermill>=2.6",
                 "ipykernel>=6", "mkdocs-material>=9.5"],
        "docs": ["mkdocs-material>=9.5"],  # the docs site: mkdocs serve / mkdocs build
        "gcp": ["apache-beam[gcp]>=2.77,<2.78"],
        # Beam's DaskRunner (--runner=dask): a local Dask cluster or an existing one
        "dask": ["dask[distributed]>=2024.4"],
    },
)
