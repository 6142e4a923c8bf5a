"""order_service: carts, checkout, orders, payments, fulfillment, shipments, returns, invoices."""
