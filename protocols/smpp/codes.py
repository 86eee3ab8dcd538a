"""The numbers of SMPP 3.4: command names and ids (section 5.1.2.1), command_status (5.1.3).

Owns: the names the rest of protocols/smpp uses for PDUs and status codes, spelt as smpplib
spells them (`submit_sm`, `ESME_RTHROTTLED`), so the adapter passes smpplib's values through.
Must not: classify statuses (window.py does, in one table) or encode PDUs (smpplib does).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Command(StrEnum):
    """PDU command names (SMPP 3.4 section 4 / 5.1.2.1), as in smpplib's `pdu.command`."""

    generic_nack = "generic_nack"
    bind_transceiver = "bind_transceiver"
    bind_transceiver_resp = "bind_transceiver_resp"
    submit_sm = "submit_sm"
    submit_sm_resp = "submit_sm_resp"
    deliver_sm = "deliver_sm"
    deliver_sm_resp = "deliver_sm_resp"
    data_sm = "data_sm"
    data_sm_resp = "data_sm_resp"
    enquire_link = "enquire_link"
    enquire_link_resp = "enquire_link_resp"
    unbind = "unbind"
    unbind_resp = "unbind_resp"
    alert_notification = "alert_notification"
    # Known so that they are named in errors; the session table allows none of them.
    bind_transmitter = "bind_transmitter"
    bind_transmitter_resp = "bind_transmitter_resp"
    bind_receiver = "bind_receiver"
    bind_receiver_resp = "bind_receiver_resp"
    outbind = "outbind"
    query_sm = "query_sm"
    query_sm_resp = "query_sm_resp"
    cancel_sm = "cancel_sm"
    cancel_sm_resp = "cancel_sm_resp"
    replace_sm = "replace_sm"
    replace_sm_resp = "replace_sm_resp"
    submit_multi = "submit_multi"
    submit_multi_resp = "submit_multi_resp"


#: command_id of each command (SMPP 3.4 section 5.1.2.1); a response is the request | 0x80000000.
COMMAND_IDS: dict[Command, int] = {
    Command.generic_nack: 0x80000000,
    Command.bind_receiver: 0x00000001, Command.bind_receiver_resp: 0x80000001,
    Command.bind_transmitter: 0x00000002, Command.bind_transmitter_resp: 0x80000002,
    Command.query_sm: 0x00000003, Command.query_sm_resp: 0x80000003,
    Command.submit_sm: 0x00000004, Command.submit_sm_resp: 0x80000004,
    Command.deliver_sm: 0x00000005, Command.deliver_sm_resp: 0x80000005,
    Command.unbind: 0x00000006, Command.unbind_resp: 0x80000006,
    Command.replace_sm: 0x00000007, Command.replace_sm_resp: 0x80000007,
    Command.cancel_sm: 0x00000008, Command.cancel_sm_resp: 0x80000008,
    Command.bind_transceiver: 0x00000009, Command.bind_transceiver_resp: 0x80000009,
    Command.outbind: 0x0000000B,
    Command.enquire_link: 0x00000015, Command.enquire_link_resp: 0x80000015,
    Command.submit_multi: 0x00000021, Command.submit_multi_resp: 0x80000021,
    Command.alert_notification: 0x00000102,
    Command.data_sm: 0x00000103, Command.data_sm_resp: 0x80000103,
}


class CommandStatus(IntEnum):
    """command_status values of SMPP 3.4 section 5.1.3 (Table 5-2)."""

    ESME_ROK = 0x00000000
    ESME_RINVMSGLEN = 0x00000001
    ESME_RINVCMDLEN = 0x00000002
    ESME_RINVCMDID = 0x00000003
    ESME_RINVBNDSTS = 0x00000004
    ESME_RALYBND = 0x00000005
    ESME_RINVPRTFLG = 0x00000006
    ESME_RINVREGDLVFLG = 0x00000007
    ESME_RSYSERR = 0x00000008
    ESME_RINVSRCADR = 0x0000000A
    ESME_RINVDSTADR = 0x0000000B
    ESME_RINVMSGID = 0x0000000C
    ESME_RBINDFAIL = 0x0000000D
    ESME_RINVPASWD = 0x0000000E
    ESME_RINVSYSID = 0x0000000F
    ESME_RCANCELFAIL = 0x00000011
    ESME_RREPLACEFAIL = 0x00000013
    ESME_RMSGQFUL = 0x00000014
    ESME_RINVSERTYP = 0x00000015
    ESME_RINVNUMDESTS = 0x00000033
    ESME_RINVDLNAME = 0x00000034
    ESME_RINVDESTFLAG = 0x00000040
    ESME_RINVSUBREP = 0x00000042
    ESME_RINVESMCLASS = 0x00000043
    ESME_RCNTSUBDL = 0x00000044
    ESME_RSUBMITFAIL = 0x00000045
    ESME_RINVSRCTON = 0x00000048
    ESME_RINVSRCNPI = 0x00000049
    ESME_RINVDSTTON = 0x00000050
    ESME_RINVDSTNPI = 0x00000051
    ESME_RINVSYSTYP = 0x00000053
    ESME_RINVREPFLAG = 0x00000054
    ESME_RINVNUMMSGS = 0x00000055
    ESME_RTHROTTLED = 0x00000058
    ESME_RINVSCHED = 0x00000061
    ESME_RINVEXPIRY = 0x00000062
    ESME_RINVDFTMSGID = 0x00000063
    ESME_RX_T_APPN = 0x00000064
    ESME_RX_P_APPN = 0x00000065
    ESME_RX_R_APPN = 0x00000066
    ESME_RQUERYFAIL = 0x00000067
    ESME_RINVOPTPARSTREAM = 0x000000C0
    ESME_ROPTPARNOTALLWD = 0x000000C1
    ESME_RINVPARLEN = 0x000000C2
    ESME_RMISSINGOPTPARAM = 0x000000C3
    ESME_RINVOPTPARAMVAL = 0x000000C4
    ESME_RDELIVERYFAILURE = 0x000000FE
    ESME_RUNKNOWNERR = 0x000000FF


def status_name(command_status: int) -> str:
    """'ESME_RTHROTTLED (0x00000058)', or 'vendor status 0x00000400' for codes outside 3.4."""
    try:
        return f"{CommandStatus(command_status).name} (0x{command_status:08X})"
    except ValueError:
        kind = "vendor" if 0x400 <= command_status <= 0x4FF else "unknown"
        return f"{kind} status 0x{command_status:08X}"
