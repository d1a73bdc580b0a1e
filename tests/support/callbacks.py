"""The vendor's callback body for a file the simulator lists, as the vendor would post it."""

from __future__ import annotations

from typing import Any


def callback_body(file: dict[str, Any]) -> dict[str, Any]:
    """The callback the vendor sends for ``file`` (a simulator file record)."""
    return {
        "type": file["type"],
        "mediaType": file["media_type"],
        "userId": file["user_id"],
        "groupId": file["room_id"],
        "startTime": str(int(file["start_time"])),
        "endTime": str(int(file["end_time"])),
        "fileName": file["file_name"],
        "fileSize": file["filesize"],
        "duration": file["file_duration"],
        "downloadUrl": file["download_url"],
        "userData": file["user_data"],
    }
