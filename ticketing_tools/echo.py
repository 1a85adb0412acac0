"""A bare grpc.aio server answering ``GatewayService.Reserve`` with no work:
the ceiling that gRPC in Python can reach on this machine, with our message
types and server options, against which the real gateway is measured.

    python -m ticketing_tools.echo --port 50099
"""

from __future__ import annotations

import argparse
from typing import Any

import grpc

from ticketing.v1 import gateway_service_pb2 as pb
from ticketing.v1 import gateway_service_pb2_grpc as pb_grpc
from ticketing_common import reflection, runtime
from ticketing_common.domain import Status
from ticketing_common.grpc_server import SERVER_OPTIONS, wait_for_signal

QUEUED = Status.QUEUED.to_proto()


class EchoGateway(pb_grpc.GatewayServiceServicer):
    async def Reserve(
        self, request: pb.ReserveRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ReserveResponse:
        return pb.ReserveResponse(reservation_id=request.idempotency_key, status=QUEUED)

    async def ReserveSync(
        self, request: pb.ReserveSyncRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ReserveSyncResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the echo server only echoes Reserve")


async def serve(host: str, port: int) -> None:
    server = grpc.aio.server(options=SERVER_OPTIONS)
    pb_grpc.add_GatewayServiceServicer_to_server(EchoGateway(), server)
    # The same reflection as the real servers: ghz finds Reserve by its name.
    reflection.enable(server)
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    try:
        await wait_for_signal()
    finally:
        await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    runtime.run_until_done(serve(args.host, args.port))


if __name__ == "__main__":
    main()
