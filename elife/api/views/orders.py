"""An order as the customer's API answers it (POST/GET /orders), and its receipt."""
from ...shop.pricing import yuan
from ...timeutil import iso


def order(o):
    return {
        "orderNumber": o.order_number,
        "phoneNumber": o.phone_number,
        "productOperator": o.product_operator,
        "rechargeType": o.recharge_type,
        "productCode": o.product_code,
        "productPriceTg": o.product_price_tg,
        "productPriceRmb": yuan(o.total_fee),
        "totalFee": o.total_fee,
        "paymentStatus": o.payment_status,
        "rechargeStatus": o.recharge_status,
        "paidAt": iso(o.paid_at),
        "rechargedAt": iso(o.recharged_at),
        "refundedAt": iso(o.refunded_at),
        "createdAt": iso(o.created_at),
        "vatRegisterNo": o.vat_register_no,
        "receipt": receipt(o),
    }


def receipt(o):
    """The VAT e-receipt the operator gave with the top-up; None before (or without one)."""
    if not (o.receipt_bill_id or o.receipt_lottery):
        return None
    return {"billId": o.receipt_bill_id, "lottery": o.receipt_lottery, "qrData": o.receipt_qr_data,
            "amount": o.receipt_amount, "vat": o.receipt_vat}
