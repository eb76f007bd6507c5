from tests.helpers import DaemonProcess


def test_daemon_answers_status_and_stops_cleanly(daemon: DaemonProcess) -> None:
    status = daemon.call("daemon.status")
    assert status["state"] == "ready"
    assert status["socket"] == daemon.socket_path
    assert daemon.stop() == 0
