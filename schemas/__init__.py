"""The contract between the build job and every reader of its output.

`schemas.features` spells the tf.train.Example feature keys (nowhere else does);
`schemas.layout` names the files in an output folder and the `build_info.json` structure.
"""
