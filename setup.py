"""Installs inat-tfrecords; also what Dataflow workers install (`--setup_file ./setup.py`)."""

import setuptools

setuptools.setup(
    name="inat-tfrecords",
    version="0.1.0",
    description="iNaturalist images + annotations -> sharded TFRecords (Apache Beam), and a "
                "tf.data trainer that keeps a GPU fed",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["pipeline", "schemas", "beam_jobs", "train",
                                               "train.*"]),
    install_requires=[
        "tensorflow>=2.16",
        "apache-beam>=2.60",
        # Beam's CRC32C (its TFRecord I/O, GCS transfer checks): without it, Beam falls back to
        # crcmod in pure Python, ~30x slower. Shards themselves are framed by TF's writer.
        "google-crc32c>=1.5",
        "pillow>=10",
        "numpy>=1.24",
        "tqdm>=4.60",
    ],
    extras_require={
        # tests/test_gcs.py builds gs:// -> gs:// against an emulator on 127.0.0.1; emulator
        # 2024.8.3 answers the copies in Beam's batched rename with 404; 2026.7.18 works.
        "test": ["pytest>=7", "matplotlib>=3.7", "apache-beam[gcp]>=2.60",
                 "gcp-storage-emulator>=2026.7.18"],
        "plot": ["matplotlib>=3.7"],  # the weight-decay figure
        "tensorboard": ["tensorboard>=2.16"],  # to view the trainer's logs
        "gcp": ["apache-beam[gcp]>=2.60"],  # gs:// paths and DataflowRunner
    },
)
