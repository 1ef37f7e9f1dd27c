"""What the customer is told, per stable code, in their language.

Codes come from the image loader, the ID-card parser and the refusal reasons;
the mobile page shows ``message`` and may use ``code`` to choose an icon.
"""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from apps.verification.models import RefusalCode

# The exact wording the bank requires for a blacklist hit (PRODUCT.md R6.1).
BLACKLISTED_MESSAGE = _(
    "Your information (or that of an account in your name) is on a blacklist. Please go to a branch counter."
)

MESSAGES: dict[str, str | Promise] = {
    # The uploaded file itself.
    "empty": _("The photo is empty. Please take it again."),
    "too_large_bytes": _("The photo is too large (over 25 MB). Please take it again at a lower resolution."),
    "not_an_image": _("The file is not a photo. Please upload a JPEG, PNG or WEBP image."),
    "unsupported_format": _("This image format is not supported. Please upload a JPEG, PNG or WEBP image."),
    "truncated": _("The photo did not arrive complete. Please take it again."),
    "too_many_pixels": _(
        "The photo has too many pixels (over 40 megapixels, and not a JPEG that can be reduced). "
        "Please take it again at a lower resolution or as JPEG."
    ),
    "decompression_bomb": _(
        "The file claims a picture size far larger than its content: it is not a genuine photo. "
        "Please take the photo again with your camera."
    ),
    # Reading the ID card.
    "not_id_card": _("No ID card front was found in the photo. Photograph the side with your portrait."),
    "cut_off": _("Part of the ID card is missing from the photo. Fit the whole card inside the frame."),
    "blurred": _("The photo of the ID card is blurred. Hold the phone still and retake it."),
    "bad_checksum": _("The ID number could not be read reliably. Retake the photo in better light."),
    "inconsistent": _("The birth date or sex printed on the card does not match the ID number. Retake the photo."),
    "ethnicity_unreadable": _("The ethnicity on the card could not be read. Retake the photo in better light."),
    "address_unreadable": _("The address on the card could not be read. Retake the photo in better light."),
    "name_not_on_record": _(
        "The name read from the card does not match our record for this ID number. Retake the photo so that "
        "every character of the name is sharp; if it still differs, please visit a branch."
    ),
    "name_unclear": _(
        "A character of your name could not be read with certainty, and the name as read is not in our "
        "record for this ID number. Retake the photo in good light, without glare on the name; if it still "
        "fails, please visit a branch."
    ),
    "account_not_found": _("No account with this number is in your name. Check the number and try again."),
    "account_photo_limit": _("Too many account photos. Please type the account number."),
    "mobile_not_proven": _("Please first confirm your mobile number with the code sent by SMS."),
    "sms_wrong": _("The code is not correct. Please check the text message and try again."),
    "sms_expired": _("The code has expired. Please ask for a new one."),
    "sms_no_code": _("Please ask for a code first."),
    "sms_too_many_sends": _("Too many codes were sent. Please visit a branch."),
    "sms_wait": _("Please wait before asking for another code."),
    "sms_failed": _("The text message could not be sent. Please try again in a moment."),
    "card_number_unreadable": _("The card number could not be read. Retake the photo or type the number."),
    "barcode_unreadable": _("No barcode could be read. Retake the photo or type the account number."),
    # Our side: the read did not finish in time (GATE1_OCR_DEADLINE_SECONDS).
    "ocr_timeout": _(
        "Reading your ID card took too long on our side. Please upload the photo again; "
        "this does not count as one of your attempts."
    ),
    # Refusals.
    RefusalCode.NO_MATCHING_CUSTOMER: _(
        "The name, ID number and mobile number do not match our records, so we cannot serve you remotely. "
        "Please check your mobile number or visit a branch."
    ),
    RefusalCode.TOO_MANY_ATTEMPTS: _("Too many attempts. Please start again later or visit a branch."),
    RefusalCode.ACCOUNT_NOT_FOUND: _("This account number was not found."),
    RefusalCode.ACCOUNT_NOT_OWNED: _("This account is not in your name."),
    RefusalCode.ACCOUNT_KIND_NOT_SERVED: _("This kind of account cannot be served by the business you chose."),
    RefusalCode.BLACKLISTED: BLACKLISTED_MESSAGE,
    RefusalCode.MOBILE_NOT_PROVEN: _(
        "The mobile number could not be confirmed with the SMS code. Please visit a branch."
    ),
}


def message_for(code: str) -> str:
    return str(MESSAGES.get(code, _("Something went wrong. Please try again.")))
