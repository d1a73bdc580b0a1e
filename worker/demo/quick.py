"""Record one meeting against the built-in simulator and print its files.

``python -m worker.demo.quick``: no Redis or Celery needed; it shows the client and the
simulator talking exactly as the vendor documents.
"""

from __future__ import annotations

import argparse
import time

from worker.anyrtc import AnyRTCClient
from worker.anyrtc.models import VodFile
from worker.errors import RateLimited
from worker.simulator import running_simulator

STATUS = {0: "not transcoded", 1: "transcoding", 2: "done", 3: "failed"}


def _row(file: VodFile) -> str:
    status = f"{file.file_status} ({STATUS.get(file.file_status, '?')})"
    return (
        f"  {file.file_id or '-':<22} status={status:<18} {file.file_duration}s"
        f"  {file.file_size} bytes  {file.download_url}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--room", default="demo-room-1")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long the meeting lasts")
    parser.add_argument("--transcode", type=float, default=3.0, help="simulated transcoding time")
    args = parser.parse_args(argv)

    with running_simulator(
        transcode_delay_s=args.transcode, upload_delay_s=0.5, per_user_files=2
    ) as sim:
        print(f"simulator: {sim.base_url}")
        client = AnyRTCClient(
            sim.app_id,
            sim.vod_token,
            record_api_url=sim.record_api_url,
            vod_api_url=sim.vod_api_url,
        )
        began_ms = int(time.time() * 1000)
        client.start_record(
            args.room, user_data={"booking_id": "demo-1"}, name_rule="demo_{roomid}_{date}_{random}"
        )
        print(f"startrecord {args.room}: ok; recording for {args.seconds:.0f}s")
        time.sleep(args.seconds)
        client.stop_record(args.room)
        print(f"stoprecord {args.room}: ok; waiting for the files to transcode")
        deadline = time.monotonic() + args.transcode + 30
        while time.monotonic() < deadline:
            # The vendor allows 5 queries a minute; this loop stays well inside that.
            time.sleep(2.5)
            try:
                page = client.list_by_room(args.room, began_ms, int(time.time() * 1000) + 60_000)
            except RateLimited:
                print("getVodInfoByRoomId: 299 (budget spent); waiting")
                continue
            print(f"getVodInfoByRoomId: {page.total} file(s)")
            for file in page.files:
                print(_row(file))
            if page.files and all(f.is_final for f in page.files):
                return 0
        print("files did not reach a final status in time")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
