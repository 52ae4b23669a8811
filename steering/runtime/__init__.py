"""What every run stands on: files written whole, the file system's refusals, the expected
errors and how a script reports them, provenance, the GPUs a job holds and the numeric
precision it runs in. The ground floor: it imports nothing else of the package.

- ``storage``: where outputs go; probes, rescue and one-line advice when a write is refused
- ``io``: atomic writes (a file is complete or absent) that follow the user's umask
- ``errors``: the expected errors the scripts print as one ``error:`` line
- ``cli``: what every script shares: ``run(main)`` turns those errors into exit code 2
- ``provenance``: the package version and the git commit of a result or checkpoint
- ``gpu_lease``: GPUs of its own for each local job (``python -m steering.runtime.gpu_lease``)
- ``precision``: fp32 / tf32 / bf16 and what each sets on the device
"""
