"""Run uvicorn's command line with TCP_NODELAY on every accepted connection, for every server alike.

uvicorn with --workers > 1 binds its listening socket itself as socket(AF_INET, SOCK_STREAM), proto 0;
accepted sockets inherit proto 0 and asyncio only sets TCP_NODELAY on sockets whose proto is
IPPROTO_TCP. A response written as headers then body then waits for the client's delayed ACK
(~40 ms on Linux) on every keep-alive request. Creating TCP sockets with proto=IPPROTO_TCP restores
asyncio's default. Usage: python serve_nodelay.py <uvicorn arguments>
"""

import socket
import sys

_init = socket.socket.__init__


def _init_tcp(self, family=-1, type=-1, proto=-1, fileno=None):
    if fileno is None and family in (socket.AF_INET, socket.AF_INET6) and type in (-1, socket.SOCK_STREAM) and proto in (-1, 0):
        type = socket.SOCK_STREAM
        proto = socket.IPPROTO_TCP
    _init(self, family, type, proto, fileno)


socket.socket.__init__ = _init_tcp

if __name__ == "__main__":
    from uvicorn.main import main

    sys.argv[0] = "uvicorn"
    main()
