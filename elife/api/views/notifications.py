"""The customer's consents as GET /notifications and POST /notifications/consent answer."""
from ...timeutil import iso


def consents(rows):
    """One entry per kind of message we send: the template the mini-program asks
    wx.requestSubscribeMessage for, and the messages the customer has allowed."""
    return {"templates": [{"kind": c.kind, "templateId": c.template_id, "credits": c.credits,
                           "lastChoice": c.last_choice, "chosenAt": iso(c.chosen_at)} for c in rows]}
