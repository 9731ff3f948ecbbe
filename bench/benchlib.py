"""What the end-to-end benchmark scripts share: naming the machine, and finding what a build made."""
import os
import platform


def cpu_model():
    """The CPU's model name, as docs/benchmarks.md records it with every result."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def find_one(build, name):
    """The path of the first file called `name` below the build directory, or None."""
    for root, dirs, files in os.walk(build):
        dirs[:] = [d for d in dirs if d != "CMakeFiles"]
        if name in files:
            return os.path.join(root, name)
    return None
