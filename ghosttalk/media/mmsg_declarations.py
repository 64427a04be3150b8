"""The C declarations of ``sendmmsg``/``recvmmsg`` and their structures, for cffi's out-of-line ABI mode.

cffi's in-line mode parses C declarations at run time with pycparser, which costs the server about 4 MB of
memory for three structures and two functions. Out of line, cffi turns them into a small Python module once
(``ghosttalk/media/_mmsg_cffi.py``, kept in the repository; no compiler involved) that needs only cffi's
backend at run time. After changing :data:`DECLARATIONS`, regenerate it with
``python -m ghosttalk.media.mmsg_declarations``; a test fails while the two disagree.
"""

from __future__ import annotations

from pathlib import Path

MODULE = "ghosttalk.media._mmsg_cffi"
MODULE_PATH = Path(__file__).with_name("_mmsg_cffi.py")

# As glibc lays them out; cffi computes the layout for the platform at hand.
DECLARATIONS = """
struct iovec { void *iov_base; size_t iov_len; };
struct msghdr {
    void *msg_name; unsigned int msg_namelen; struct iovec *msg_iov; size_t msg_iovlen;
    void *msg_control; size_t msg_controllen; int msg_flags;
};
struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; };
int sendmmsg(int sockfd, struct mmsghdr *msgvec, unsigned int vlen, int flags);
int recvmmsg(int sockfd, struct mmsghdr *msgvec, unsigned int vlen, int flags, void *timeout);
"""


def emit(path: Path) -> None:
    """Write the out-of-line module for :data:`DECLARATIONS` to ``path``."""
    import cffi  # only here: in-line cffi is what the generated module spares the server

    builder = cffi.FFI()
    builder.cdef(DECLARATIONS)
    builder.set_source(MODULE, None)
    builder.emit_python_code(str(path))


if __name__ == "__main__":
    emit(MODULE_PATH)
