"""Every audit action code, in one place.

Codes are dotted: ``<app>.<entity>.<event>``. A code is never renamed or
reused once records carry it (old records must keep their meaning); add new
codes instead. ``audit_record`` refuses any code that is not listed here.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class AuditAction(models.TextChoices):
    # Staff authentication (apps.staff receivers of Django's auth signals).
    STAFF_LOGIN_SUCCEEDED = "staff.login.succeeded", _("Staff login succeeded")
    STAFF_LOGIN_FAILED = "staff.login.failed", _("Staff login failed")
    STAFF_LOGIN_LOCKED_OUT = "staff.login.locked_out", _("Staff account locked out after failed logins")
    STAFF_LOGGED_OUT = "staff.logout", _("Staff logged out")
    # Staff records and roles.
    STAFF_PROFILE_CREATED = "staff.profile.created", _("Staff member created")
    STAFF_PROFILE_UPDATED = "staff.profile.updated", _("Staff member updated")
    STAFF_ROLES_SYNCED = "staff.roles.synced", _("Role permissions synchronized")
    # Rights outside the role table taken away by role_permissions_sync (data: per
    # username the per-user permissions, superuser flag and groups removed).
    STAFF_RIGHTS_REVOKED = "staff.rights.revoked", _("Rights outside the role table removed")
    # Break-glass (manage.py break_glass): superuser rights granted to one user on two
    # named people's word (data: requested_by, approved_by, reason, expires_at) ...
    STAFF_ELEVATION_GRANTED = "staff.elevation.granted", _("Break-glass superuser rights granted")
    # ... and taken back at expiry (the housekeeping sweeper) or on revocation (data: why).
    STAFF_ELEVATION_ENDED = "staff.elevation.ended", _("Break-glass superuser rights ended")
    # Login refused unchecked: the username's recent failures impose a short wait (data: ip, wait_seconds).
    STAFF_LOGIN_DELAYED = "staff.login.delayed", _("Staff login delayed after failed attempts")
    # Customer data (apps.customers).
    BRANCH_CREATED = "customers.branch.created", _("Branch created")
    BRANCH_UPDATED = "customers.branch.updated", _("Branch updated")
    CUSTOMER_CREATED = "customers.customer.created", _("Customer created")
    CUSTOMER_UPDATED = "customers.customer.updated", _("Customer updated")
    ACCOUNT_CREATED = "customers.account.created", _("Account created")
    ACCOUNT_UPDATED = "customers.account.updated", _("Account updated")
    BLACKLIST_ENTRY_ADDED = "customers.blacklist.added", _("Blacklist entry added")
    BLACKLIST_ENTRY_UPDATED = "customers.blacklist.updated", _("Blacklist entry updated")
    # Gate 1 (apps.verification): a customer's visit before the queue.
    VISIT_STARTED = "verification.visit.started", _("Visit started")
    VISIT_LOCATION_REPORTED = "visits.location.reported", _("Customer's location recorded")
    VISIT_ID_CARD_UPLOADED = "verification.visit.id_card_uploaded", _("ID card photo uploaded")
    VISIT_ID_CARD_REJECTED = "verification.visit.id_card_rejected", _("ID card upload rejected")
    VISIT_ID_CARD_READ = "verification.visit.id_card_read", _("ID card read")
    VISIT_ID_CARD_UNREADABLE = "verification.visit.id_card_unreadable", _("ID card unreadable")
    VISIT_ID_CARD_RETAKE = "verification.visit.id_card_retake", _("ID card photo to be retaken")
    # The sweeper (GATE1_OCR_DEADLINE_SECONDS): an upload still being read past
    # the deadline has its OCR queued again, once (data: attempt, waited
    # seconds); still unread past a second deadline, the customer is asked to
    # upload again, not counted as one of their uploads (data: attempt).
    VISIT_ID_CARD_OCR_REQUEUED = "verification.visit.id_card_ocr_requeued", _("ID card reading queued again")
    VISIT_ID_CARD_OCR_TIMED_OUT = "verification.visit.id_card_ocr_timed_out", _("ID card not read in time")
    VISIT_IDENTITY_MATCHED = "verification.visit.identity_matched", _("Name, ID number and mobile matched")
    VISIT_ACCOUNT_NOT_FOUND = "verification.visit.account_not_found", _("Account number not found")
    # Gate 1 additions (issue #15). The name read is not the bank's for that
    # ID number: the customer retakes the photo (data: masked facts).
    VISIT_NAME_NOT_ON_RECORD = "verification.visit.name_not_on_record", _("Name read differs from the record")
    # Account photo read in Celery (data: attempt, reason or result, masked number).
    VISIT_ACCOUNT_PHOTO_UPLOADED = "verification.visit.account_photo_uploaded", _("Account photo uploaded")
    VISIT_ACCOUNT_PHOTO_REJECTED = "verification.visit.account_photo_rejected", _("Account photo rejected")
    VISIT_ACCOUNT_PHOTO_READ = "verification.visit.account_photo_read", _("Account photo read")
    # SMS one-time code to the mobile number on record (data: masked mobile, send number, wrong tries).
    VISIT_SMS_SENT = "verification.visit.sms_sent", _("SMS code sent")
    VISIT_SMS_FAILED = "verification.visit.sms_failed", _("SMS code not sent")
    VISIT_SMS_WRONG = "verification.visit.sms_wrong", _("Wrong SMS code")
    VISIT_SMS_EXPIRED = "verification.visit.sms_expired", _("SMS code expired")
    VISIT_MOBILE_PROVEN = "verification.visit.mobile_proven", _("Mobile number proven by SMS code")
    # The retention period removed the visit's photos (data: which files, period).
    VISIT_PHOTOS_PURGED = "verification.visit.photos_purged", _("Visit photos removed")
    VISIT_ACCOUNT_ACCEPTED = "verification.visit.account_accepted", _("Account accepted")
    VISIT_SCREENING_PASSED = "verification.visit.screening_passed", _("Blacklist screening passed")
    VISIT_REFUSED = "verification.visit.refused", _("Visit refused")
    VISIT_CLOSED = "verification.visit.closed", _("Service closed with its outcome")
    # The customer's page showed that the call is recorded (dual recording) and the customer
    # agreed before queueing (data: notice, camera, microphone: what the device check found).
    VISIT_RECORDING_CONSENTED = "visits.visit.recording_consented", _("Customer agreed to the recorded call")
    # Queueing and routing (apps.queueing).
    QUEUE_CONFIGURED = "queueing.queue.configured", _("Queue configured")
    QUEUE_ENTERED = "queueing.entry.entered", _("Customer joined a queue")
    QUEUE_OFFERED = "queueing.entry.offered", _("Customer offered to an agent")
    QUEUE_OFFER_ACCEPTED = "queueing.entry.offer_accepted", _("Agent accepted the offer")
    QUEUE_OFFER_DECLINED = "queueing.entry.offer_declined", _("Agent declined the offer")
    QUEUE_OFFER_TIMED_OUT = "queueing.entry.offer_timed_out", _("Offer not answered in time")
    QUEUE_OVERFLOWED = "queueing.entry.overflowed", _("Customer overflowed to another queue")
    QUEUE_MOVED = "queueing.entry.moved", _("Customer moved to another queue")
    QUEUE_DISCONNECTED = "queueing.entry.disconnected", _("Customer's page disconnected")
    QUEUE_RECONNECTED = "queueing.entry.reconnected", _("Customer's page reconnected")
    QUEUE_ABANDONED = "queueing.entry.abandoned", _("Customer left the queue")
    # data: previous entry id and why its call ended; the new entry goes to the front.
    QUEUE_REJOINED = "queueing.entry.rejoined", _("Customer queued again after a failed call")
    AGENT_STATE_CHANGED = "queueing.agent.state_changed", _("Agent state changed")
    # An agent's presence row, created offline when their workspace first connects;
    # data: the agent's employee number. Later changes are AGENT_STATE_CHANGED.
    AGENT_PRESENCE_CREATED = "queueing.agent.presence_created", _("Agent presence created")
    # Video calls (apps.calls).
    CALL_CREATED = "calls.call.created", _("Call created")
    CALL_ROOM_OPENED = "calls.call.room_opened", _("Video room opened")
    CALL_ROOM_CLOSED = "calls.call.room_closed", _("Video room closed")
    CALL_CONNECTED = "calls.call.connected", _("Call connected")
    CALL_ENDED = "calls.call.ended", _("Call ended")
    CALL_PARTICIPANT_EVENT = "calls.participant.event", _("Call participant joined, published or left")
    CALL_INVITED = "calls.call.invited", _("Expert or agent invited into a call")
    # A supervisor entered a live call of their team (data: supervisor, mode "listen" or
    # "join", previous mode when a listener switched to joining).
    CALL_SUPERVISOR_ENTERED = "calls.supervisor.entered", _("Supervisor listened in on or joined a call")
    # The supervisor left the call (data: supervisor, mode); a call's end closes the seat without this record.
    CALL_SUPERVISOR_LEFT = "calls.supervisor.left", _("Supervisor left a call")
    # Janus reported a listening supervisor publishing (a client that ignored its
    # listen-only credentials); the feed is kicked from the room (data: supervisor, feed).
    CALL_SUPERVISOR_PUBLISH_REFUSED = "calls.supervisor.publish_refused", _("Listening supervisor's publishing stopped")
    # Compliance (apps.compliance): audit-report exports and access to personal data.
    # Requested: a staff member asked for an export (data: format, filters, unmasked).
    COMPLIANCE_EXPORT_REQUESTED = "compliance.export.requested", _("Audit export requested")
    # Completed: the file is stored (data: rows, sha256 of the file, bytes, format).
    COMPLIANCE_EXPORT_COMPLETED = "compliance.export.completed", _("Audit export completed")
    # Failed: generation stopped (data: error, attempt); a retry may still complete it.
    COMPLIANCE_EXPORT_FAILED = "compliance.export.failed", _("Audit export failed")
    # Downloaded: someone received the file (data: sha256, rows, unmasked).
    COMPLIANCE_EXPORT_DOWNLOADED = "compliance.export.downloaded", _("Audit export downloaded")
    # Unmasked: personal data was requested in clear (data: purpose, and what was asked for).
    PERSONAL_DATA_UNMASKED = "compliance.personal_data.unmasked", _("Personal data shown unmasked")
    # Evidence viewed: someone opened a service's evidence page (data: service, unmasked).
    COMPLIANCE_EVIDENCE_VIEWED = "compliance.evidence.viewed", _("Service evidence viewed")
    # Snapshot viewed: a snapshot image was sent to someone from the evidence page (data: service, sha256).
    COMPLIANCE_SNAPSHOT_VIEWED = "compliance.snapshot.viewed", _("Service snapshot viewed")
    # Summary exported: the daily summary report was downloaded as CSV (data: filter, grouping, rows, sha256).
    COMPLIANCE_SUMMARY_EXPORTED = "compliance.summary.exported", _("Daily summary report exported")
    # Recordings (apps.recordings): post-processing of call recordings, evidence hashes, snapshots.
    # Scheduled: the call ended and its post-processing was queued (data: call, record folder).
    RECORDING_SCHEDULED = "recordings.recording.scheduled", _("Recording post-processing scheduled")
    # Started: an attempt began (data: attempt).
    RECORDING_STARTED = "recordings.recording.started", _("Recording post-processing started")
    # File hashed: one original or output file and its SHA-256 (data: kind, path, sha256, bytes, role, feed).
    RECORDING_FILE_HASHED = "recordings.file.hashed", _("Recording file hashed")
    # Completed: every file is stored and hashed (data: files, duration, attempt).
    RECORDING_COMPLETED = "recordings.recording.completed", _("Recording post-processing completed")
    # Failed: the attempt stopped (data: error, attempt); it can be re-run.
    RECORDING_FAILED = "recordings.recording.failed", _("Recording post-processing failed")
    # Reprocess requested: someone put a failed recording back in the queue.
    RECORDING_REPROCESS_REQUESTED = "recordings.recording.reprocess_requested", _("Recording post-processing re-run")
    # Verified: recordings_verify re-hashed the stored files (data: checked, mismatches with paths).
    RECORDING_VERIFIED = "recordings.recording.verified", _("Recording files verified against their hashes")
    # Played: someone started playing a recording file in the browser (data: file, kind, sha256, range).
    # Seeking sends further range requests; only the one starting at byte 0 opens a playback record.
    RECORDING_PLAYED = "recordings.file.played", _("Recording played")
    # Downloaded: someone downloaded a recording file (data: file, kind, sha256).
    RECORDING_DOWNLOADED = "recordings.file.downloaded", _("Recording downloaded")
    # Snapshot: staff captured the customer's video frame (data: snapshot, sha256, size).
    SNAPSHOT_CAPTURED = "recordings.snapshot.captured", _("Customer snapshot captured")
    # In-call gates 2–4 (apps.gates), R6.2–R6.5.
    GATES_STARTED = "gates.progress.started", _("In-call gates started")
    GATE_ATTEMPT_STARTED = "gates.attempt.started", _("Gate check started")
    GATE_ATTEMPT_FINISHED = "gates.attempt.finished", _("Gate check finished")
    GATE_PASSED = "gates.gate.passed", _("Gate passed")
    GATE_FAILED = "gates.gate.failed", _("Gate failed; service ended")
    GATE_LIVENESS_CHALLENGED = "gates.liveness.challenged", _("Liveness challenge sent to the customer")
    VISIT_BLOCKED = "visits.block.created", _("Remote service blocked after a failed identity or face check")
    VISIT_BLOCK_LIFTED = "visits.block.lifted", _("Remote service block lifted")
    VISIT_BLOCK_REFUSED = "visits.block.refused", _("New remote visit refused: remote service blocked")
    GATES_ALL_PASSED = "gates.progress.all_passed", _("All four gates passed")
    GATES_OUT_OF_ORDER = "gates.request.out_of_order", _("Business operation refused: gates not passed")
    QUESTION_TEMPLATE_SAVED = "gates.question_template.saved", _("Gate 4 question added or changed")
    QUESTION_POLICY_SAVED = "gates.question_policy.saved", _("Gate 4 question policy set for a business")
    SNAPSHOT_CHOSEN_FOR_FACE = "recordings.snapshot.chosen_for_face", _("Snapshot chosen as the live image")
    # Business operations in the call (apps.operations), R7.
    OPERATION_STARTED = "operations.operation.started", _("Business operation started")
    OPERATION_REFUSED = (
        "operations.operation.refused",
        _("Business operation refused (core banking's record does not match)"),
    )
    OPERATION_CONFIRMED = "operations.operation.confirmed", _("Business operation confirmed; sent to core banking")
    OPERATION_CORE_UNANSWERED = (
        "operations.operation.core_unanswered",
        _("Core banking did not answer; to confirm again"),
    )
    OPERATION_SUCCEEDED = "operations.operation.succeeded", _("Business operation done")
    OPERATION_FAILED = "operations.operation.failed", _("Business operation failed")
    OPERATION_CANCELLED = "operations.operation.cancelled", _("Business operation cancelled")
    OPERATION_CERTIFICATE_DOWNLOADED = (
        "operations.certificate.downloaded",
        _("Intent verification certificate downloaded"),
    )
    # Snapshot viewed: someone opened a stored snapshot image (data: snapshot, sha256).
    SNAPSHOT_VIEWED = "recordings.snapshot.viewed", _("Customer snapshot viewed")
    # Purged: the retention period of a closed service ended and one of its media files was
    # removed (data: kind, path, sha256, bytes, call, visit, closed_at, retention_days). The
    # file's row and hash stay, marked purged; one record per file.
    RECORDING_FILE_PURGED = "recordings.file.purged", _("Recording file removed after the retention period")
    # Snapshot purged: the same for a snapshot image (data: snapshot, path, sha256, call, visit, closed_at).
    SNAPSHOT_PURGED = "recordings.snapshot.purged", _("Customer snapshot removed after the retention period")
    # Two-factor (apps.security): staff TOTP devices and the verification step at login.
    # Enrolment started: a new, unconfirmed authenticator secret was issued (data: device).
    SECURITY_OTP_ENROLMENT_STARTED = "security.otp.enrolment_started", _("Two-factor enrolment started")
    # Enrolled: the first code confirmed the device; recovery codes were issued (data: device, recovery_codes).
    SECURITY_OTP_ENROLLED = "security.otp.enrolled", _("Two-factor device enrolled")
    # Verified: the session passed the second factor (data: device kind, ip).
    SECURITY_OTP_VERIFIED = "security.otp.verified", _("Two-factor verification succeeded")
    # Failed: a wrong code (data: ip, during enrolment or login); throttling doubles the wait each time.
    SECURITY_OTP_FAILED = "security.otp.failed", _("Two-factor verification failed")
    # Throttled: a code was refused unchecked because of earlier failures (data: ip, wait seconds).
    SECURITY_OTP_THROTTLED = "security.otp.throttled", _("Two-factor verification throttled")
    # Recovery code used: a one-time code replaced the authenticator (data: remaining codes).
    SECURITY_OTP_RECOVERY_CODE_USED = "security.otp.recovery_code_used", _("Two-factor recovery code used")
    # Password confirmed: the password was typed again before enrolling an authenticator (data: ip).
    SECURITY_PASSWORD_CONFIRMED = "security.password.confirmed", _("Password confirmed for a sensitive step")
    # Password confirmation failed (data: ip).
    SECURITY_PASSWORD_CONFIRM_FAILED = "security.password.confirm_failed", _("Password confirmation failed")
    # Pending enrolment discarded: it was started by another session or expired (data: why).
    SECURITY_OTP_ENROLMENT_DISCARDED = "security.otp.enrolment_discarded", _("Pending two-factor enrolment discarded")
    # The audit trail itself.
    AUDIT_CHAIN_VERIFIED = "audit.chain.verified", _("Audit chain verified")
    AUDIT_CHECKPOINT_EXPORTED = "audit.checkpoint.exported", _("Signed audit checkpoint exported")
