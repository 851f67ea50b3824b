"""NL -> SQL over a small SQLite shop database (customers, products, orders, order_items).

The graded scenario fine-tunes a model on 500 (question, SQL) pairs from this grammar.
``reference(question)`` parses any question of the grammar - including held-out ones with
cities, products or customers that never appear in training - and returns its SQL;
``degrade(sql, rng)`` returns the syntactic garbage an overfit model emits on new
questions (memorised fragments spliced in, unbalanced parentheses, repeated clauses,
misspelt keywords), guaranteed not to execute.

Deliberately absent: any function measuring a model's execution accuracy. Students write
that in the graded assignment; :func:`execute_sql` only runs one statement safely.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sqlite3
import threading
import time
from collections.abc import Collection, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from tunelab.domains import Domain
from tunelab.domains._grammar import Grammar, Pair, Slot, SlotValue, Template

__all__ = [
    "CATEGORIES",
    "CITIES",
    "CUSTOMER_NAMES",
    "DEFAULT_DB_SEED",
    "DOMAIN",
    "PRODUCTS",
    "SCHEMA_SQL",
    "SqlDomain",
    "build_database",
    "connect_memory",
    "execute_sql",
    "generate_pairs",
    "split_pairs",
]

DEFAULT_DB_SEED = 2024

SCHEMA_SQL = """\
-- Shop database for the NL -> SQL scenario (data/nl_sql/shop.sqlite).
-- Dates are ISO-8601 text (YYYY-MM-DD); prices are in dollars.

CREATE TABLE customers (
    customer_id INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    email       TEXT NOT NULL UNIQUE,
    city        TEXT NOT NULL,
    signup_date TEXT NOT NULL
);

CREATE TABLE products (
    product_id INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    category   TEXT NOT NULL,
    price      REAL NOT NULL CHECK (price > 0)
);

CREATE TABLE orders (
    order_id    INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
    order_date  TEXT NOT NULL,
    status      TEXT NOT NULL
        CHECK (status IN ('delivered', 'shipped', 'pending', 'cancelled', 'returned'))
);

CREATE TABLE order_items (
    order_item_id INTEGER PRIMARY KEY,
    order_id      INTEGER NOT NULL REFERENCES orders (order_id),
    product_id    INTEGER NOT NULL REFERENCES products (product_id),
    quantity      INTEGER NOT NULL CHECK (quantity > 0),
    unit_price    REAL NOT NULL
);

CREATE INDEX idx_orders_customer ON orders (customer_id);
CREATE INDEX idx_orders_date ON orders (order_date);
CREATE INDEX idx_items_order ON order_items (order_id);
CREATE INDEX idx_items_product ON order_items (product_id);
"""

# ------------------------------------------------------------------ vocabulary
CITIES = (
    "London", "Paris", "Berlin", "Madrid", "Rome", "Lisbon",
    "Amsterdam", "Dublin", "Prague", "Warsaw", "Vienna", "Oslo",
)  # fmt: skip
HELDOUT_CITIES = ("Vienna", "Oslo")
_CITY_WEIGHTS = (14, 12, 11, 9, 8, 8, 8, 7, 6, 6, 6, 5)

# SQL value -> how questions say it
CATEGORIES = {
    "Electronics": "electronics",
    "Books": "book",
    "Toys": "toy",
    "Garden": "garden",
    "Kitchen": "kitchen",
    "Sports": "sports",
    "Clothing": "clothing",
    "Beauty": "beauty",
}
HELDOUT_CATEGORIES = ("Garden",)

PRODUCTS: tuple[tuple[str, str, float], ...] = (
    ("Nova Wireless Earbuds", "Electronics", 59.99),
    ("Pulse Bluetooth Speaker", "Electronics", 39.99),
    ("Orbit Smart Watch", "Electronics", 149.0),
    ("Volt Power Bank", "Electronics", 24.99),
    ("Echo USB-C Hub", "Electronics", 34.5),
    ("Lumen 4K Webcam", "Electronics", 89.0),
    ("Zen Noise-Cancelling Headphones", "Electronics", 199.0),
    ("Quiet Orchard Hardcover", "Books", 14.99),
    ("Patterns of the Sea", "Books", 22.5),
    ("Short History of Maps", "Books", 18.0),
    ("Learning SQL the Slow Way", "Books", 39.0),
    ("Midnight Harbour", "Books", 12.99),
    ("Field Guide to Mushrooms", "Books", 27.0),
    ("Stars Over the Desert", "Books", 9.99),
    ("Rocket Building Blocks", "Toys", 29.99),
    ("Plush Otter", "Toys", 17.5),
    ("Wooden Train Set", "Toys", 44.0),
    ("Puzzle Cube Pro", "Toys", 11.99),
    ("Remote Control Rover", "Toys", 64.99),
    ("Dino Dig Kit", "Toys", 19.99),
    ("Magnetic Tiles Set", "Toys", 52.0),
    ("Cedar Raised Bed", "Garden", 119.0),
    ("Copper Watering Can", "Garden", 32.0),
    ("Solar Path Lights", "Garden", 27.5),
    ("Ergo Pruning Shears", "Garden", 21.99),
    ("Herb Seed Collection", "Garden", 8.99),
    ("Folding Garden Kneeler", "Garden", 24.0),
    ("Compost Tumbler", "Garden", 139.0),
    ("Cast Iron Skillet", "Kitchen", 45.0),
    ("Chef Knife 8 inch", "Kitchen", 79.0),
    ("Bamboo Cutting Board", "Kitchen", 19.5),
    ("Pour-Over Coffee Set", "Kitchen", 36.0),
    ("Glass Storage Jars", "Kitchen", 22.0),
    ("Stand Mixer Mini", "Kitchen", 129.0),
    ("Silicone Baking Mats", "Kitchen", 12.5),
    ("Trail Running Shoes", "Sports", 109.0),
    ("Yoga Mat Plus", "Sports", 29.0),
    ("Adjustable Dumbbells", "Sports", 159.0),
    ("Insulated Water Bottle", "Sports", 18.99),
    ("Cycling Gloves", "Sports", 24.5),
    ("Tennis Racket Lite", "Sports", 84.0),
    ("Jump Rope Speed", "Sports", 9.5),
    ("Merino Wool Sweater", "Clothing", 89.0),
    ("Rain Shell Jacket", "Clothing", 129.0),
    ("Linen Shirt", "Clothing", 49.0),
    ("Organic Cotton Tee", "Clothing", 19.0),
    ("Wool Beanie", "Clothing", 16.5),
    ("Denim Jeans Classic", "Clothing", 69.0),
    ("Hiking Socks 3-Pack", "Clothing", 21.0),
    ("Rose Face Serum", "Beauty", 34.0),
    ("Shea Body Butter", "Beauty", 14.5),
    ("Mineral Sunscreen SPF50", "Beauty", 19.99),
    ("Bamboo Hairbrush", "Beauty", 12.0),
    ("Lavender Bath Salts", "Beauty", 9.99),
    ("Vitamin C Cream", "Beauty", 27.0),
    ("Argan Hair Oil", "Beauty", 23.5),
)
# Products reserved for held-out questions: the 4th of each category.
HELDOUT_PRODUCTS = tuple(PRODUCTS[i * 7 + 3][0] for i in range(len(CATEGORIES)))
# New arrivals nobody has bought yet (so "never ordered" questions have answers).
_UNSOLD_PRODUCTS = ("Magnetic Tiles Set", "Argan Hair Oil")

_FIRST_NAMES = (
    "Maria", "James", "Sofia", "Liam", "Emma", "Noah", "Olivia", "Lucas", "Ana", "Mateo",
    "Chloe", "Hugo", "Lena", "Jonas", "Elif", "Omar", "Priya", "Arjun", "Mei", "Kenji",
    "Zofia", "Piotr", "Ines", "Tomas", "Freya", "Erik", "Aisha", "Yusuf", "Clara", "Felix",
    "Nora", "Leo", "Sara", "Daniel", "Julia", "Marco", "Eva", "Luca", "Ida", "Milan",
)  # fmt: skip
_LAST_NAMES = (
    "Santos", "Smith", "Rossi", "Novak", "Garcia", "Dubois", "Jansen", "Kowalski", "Silva",
    "Berg", "Larsen", "Costa", "Fischer", "Moreau", "Horvat", "Popescu", "Nielsen",
    "Ferreira", "Weber", "Martin", "Lopez", "Bianchi", "Kelly", "Byrne", "Svoboda", "Nagy",
    "Ozturk", "Khan", "Patel", "Tanaka", "Chen", "Schmidt", "Petrov", "Andersen", "Romero",
    "Fontaine", "Walsh", "Keller", "Lindqvist", "Murphy",
)  # fmt: skip
_N_CUSTOMERS = 160


def _customer_names() -> tuple[str, ...]:
    # Fixed (not seed-dependent) so the grammar's vocabulary never changes.
    rng = np.random.default_rng(7)
    picks = rng.choice(len(_FIRST_NAMES) * len(_LAST_NAMES), size=_N_CUSTOMERS, replace=False)
    return tuple(
        f"{_FIRST_NAMES[p // len(_LAST_NAMES)]} {_LAST_NAMES[p % len(_LAST_NAMES)]}" for p in picks
    )


CUSTOMER_NAMES = _customer_names()
HELDOUT_CUSTOMERS = CUSTOMER_NAMES[::5]

STATUSES = ("delivered", "shipped", "pending", "cancelled", "returned")
_STATUS_WEIGHTS = (0.62, 0.13, 0.07, 0.11, 0.07)
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_ORDER_YEARS = (2023, 2024)
_SIGNUP_START = dt.date(2021, 1, 1)
_SIGNUP_END = dt.date(2024, 9, 30)


# ----------------------------------------------------------------------- slots
def _month_values() -> list[SlotValue]:
    out = []
    for year in _ORDER_YEARS:
        for m, label in enumerate(_MONTHS, start=1):
            end = f"{year + 1}-01-01" if m == 12 else f"{year}-{m + 1:02d}-01"
            out.append(
                SlotValue(
                    surface=f"{label} {year}", value=f"{year}-{m:02d}", start=f"{year}-{m:02d}-01",
                    end=end,
                )
            )  # fmt: skip
    return out


def _year_values() -> list[SlotValue]:
    return [
        SlotValue(surface=str(y), value=y, start=f"{y}-01-01", end=f"{y + 1}-01-01")
        for y in range(2021, 2025)
    ]


_PRICES = (10, 15, 20, 25, 30, 40, 50, 75, 100, 150)
_HELDOUT_PRICES = (35, 60, 120)

SLOTS: dict[str, Slot] = {
    "city": Slot.simple("city", ((c, c) for c in CITIES), HELDOUT_CITIES),
    "category": Slot(
        "category",
        tuple(SlotValue(surface=s, value=v) for v, s in CATEGORIES.items()),
        frozenset(CATEGORIES[c] for c in HELDOUT_CATEGORIES),
    ),
    "product": Slot.simple("product", ((p[0], p[0]) for p in PRODUCTS), HELDOUT_PRODUCTS),
    "customer": Slot.simple("customer", ((c, c) for c in CUSTOMER_NAMES), HELDOUT_CUSTOMERS),
    "status": Slot.simple("status", ((s, s) for s in STATUSES)),
    "month": Slot("month", tuple(_month_values())),
    "year": Slot("year", tuple(_year_values())),
    "price": Slot.simple(
        "price",
        ((f"${p}", p) for p in sorted(_PRICES + _HELDOUT_PRICES)),
        (f"${p}" for p in _HELDOUT_PRICES),
    ),
    "n": Slot.simple("n", ((str(n), n) for n in range(2, 11))),
    "k_orders": Slot.simple("k_orders", ((str(k), k) for k in range(1, 13))),
    "k_customers": Slot.simple("k_customers", ((str(k), k) for k in range(3, 26))),
}

# ------------------------------------------------------------------- templates
_REVENUE = "SUM(oi.quantity * oi.unit_price)"
_J_ORDERS_CUST = "JOIN customers c ON c.customer_id = o.customer_id"
_IN = "{0}.order_date >= '{{{1}.start}}' AND {0}.order_date < '{{{1}.end}}'"


def _in_period(alias: str, slot: str) -> str:
    return _IN.format(alias, slot)


TEMPLATES: tuple[Template, ...] = (
    Template(
        "count_customers_city",
        (
            "How many customers live in {city}?",
            "How many customers are based in {city}?",
            "Count the customers from {city}.",
            "What is the number of customers in {city}?",
        ),
        "SELECT COUNT(*) FROM customers WHERE city = '{city}'",
    ),
    Template(
        "list_customers_city",
        (
            "List the names of customers who live in {city}.",
            "Which customers are from {city}?",
            "Show all customers located in {city}, sorted by name.",
        ),
        "SELECT name FROM customers WHERE city = '{city}' ORDER BY name",
    ),
    Template(
        "count_products_category",
        (
            "How many products are in the {category} category?",
            "Count the {category} products.",
            "How many different {category} products do we sell?",
        ),
        "SELECT COUNT(*) FROM products WHERE category = '{category}'",
    ),
    Template(
        "category_products_under_price",
        (
            "Which {category} products cost less than {price}?",
            "List {category} products priced under {price}, cheapest first.",
            "Show the {category} items that are cheaper than {price}.",
        ),
        "SELECT name, price FROM products WHERE category = '{category}' AND price < {price} "
        "ORDER BY price, name",
    ),
    Template(
        "products_over_price",
        (
            "Which products cost more than {price}?",
            "List all products priced above {price}.",
            "Show products that are more expensive than {price}, sorted by name.",
        ),
        "SELECT name FROM products WHERE price > {price} ORDER BY name",
    ),
    Template(
        "products_between_prices",
        (
            "Which products cost between {low:price} and {high:price}?",
            "List the products priced from {low:price} to {high:price}.",
        ),
        "SELECT name, price FROM products WHERE price BETWEEN {low} AND {high} "
        "ORDER BY price, name",
        constraint=lambda v: v["low"].value < v["high"].value,
    ),
    Template(
        "avg_price_category",
        (
            "What is the average price of {category} products?",
            "What do {category} products cost on average?",
            "Give the mean price in the {category} category.",
        ),
        "SELECT ROUND(AVG(price), 2) FROM products WHERE category = '{category}'",
    ),
    Template(
        "most_expensive_products",
        (
            "What are the {n} most expensive products?",
            "List the top {n} products by price.",
            "Show the {n} priciest products with their prices.",
        ),
        "SELECT name, price FROM products ORDER BY price DESC, name LIMIT {n}",
    ),
    Template(
        "cheapest_in_category",
        (
            "What are the {n} cheapest {category} products?",
            "List the {n} least expensive items in the {category} category.",
        ),
        "SELECT name, price FROM products WHERE category = '{category}' ORDER BY price, name "
        "LIMIT {n}",
    ),
    Template(
        "price_of_product",
        ("What does the {product} cost?", "What is the price of the {product}?"),
        "SELECT price FROM products WHERE name = '{product}'",
    ),
    Template(
        "orders_in_month",
        (
            "How many orders were placed in {month}?",
            "Count the orders from {month}.",
            "What was the number of orders in {month}?",
        ),
        "SELECT COUNT(*) FROM orders WHERE order_date >= '{month.start}' "
        "AND order_date < '{month.end}'",
    ),
    Template(
        "orders_status_year",
        (
            "How many {status} orders were there in {year}?",
            "Count the orders with status {status} in {year}.",
        ),
        "SELECT COUNT(*) FROM orders WHERE status = '{status}' AND order_date >= '{year.start}' "
        "AND order_date < '{year.end}'",
    ),
    Template(
        "orders_city",
        (
            "How many orders have customers from {city} placed?",
            "Count all orders placed by customers living in {city}.",
            "What is the total number of orders from {city}?",
        ),
        f"SELECT COUNT(*) FROM orders o {_J_ORDERS_CUST} WHERE c.city = '{{city}}'",
    ),
    Template(
        "orders_status_city",
        (
            "How many orders from {city} customers are {status}?",
            "Count the {status} orders placed by customers in {city}.",
        ),
        f"SELECT COUNT(*) FROM orders o {_J_ORDERS_CUST} WHERE c.city = '{{city}}' "
        "AND o.status = '{status}'",
    ),
    Template(
        "revenue_year",
        (
            "What was the total revenue in {year}?",
            "How much did we sell in {year} in total?",
            "Compute the total sales amount for {year}.",
        ),
        f"SELECT ROUND({_REVENUE}, 2) FROM order_items oi "
        f"JOIN orders o ON o.order_id = oi.order_id WHERE {_in_period('o', 'year')}",
    ),
    Template(
        "revenue_by_category_year",
        (
            "What was the revenue per category in {year}?",
            "Break down {year} sales by product category, highest first.",
        ),
        f"SELECT p.category, ROUND({_REVENUE}, 2) AS revenue FROM order_items oi "
        "JOIN products p ON p.product_id = oi.product_id "
        f"JOIN orders o ON o.order_id = oi.order_id WHERE {_in_period('o', 'year')} "
        "GROUP BY p.category ORDER BY revenue DESC",
    ),
    Template(
        "revenue_category_month",
        (
            "How much revenue did {category} products bring in during {month}?",
            "What were the {category} sales in {month}?",
        ),
        f"SELECT ROUND({_REVENUE}, 2) FROM order_items oi "
        "JOIN products p ON p.product_id = oi.product_id "
        "JOIN orders o ON o.order_id = oi.order_id "
        f"WHERE p.category = '{{category}}' AND {_in_period('o', 'month')}",
    ),
    Template(
        "cities_with_many_customers",
        (
            "Which cities have more than {k:k_customers} customers?",
            "List the cities with over {k:k_customers} customers.",
        ),
        "SELECT city FROM customers GROUP BY city HAVING COUNT(*) > {k} ORDER BY city",
    ),
    Template(
        "customers_with_many_orders",
        (
            "Which customers have placed more than {k:k_orders} orders?",
            "List customers with more than {k:k_orders} orders.",
        ),
        "SELECT c.name FROM customers c JOIN orders o ON o.customer_id = c.customer_id "
        "GROUP BY c.customer_id HAVING COUNT(*) > {k} ORDER BY c.name",
    ),
    Template(
        "city_customers_with_many_orders",
        (
            "Which customers from {city} have placed more than {k:k_orders} orders?",
            "List the {city} customers with more than {k:k_orders} orders.",
        ),
        "SELECT c.name FROM customers c JOIN orders o ON o.customer_id = c.customer_id "
        "WHERE c.city = '{city}' GROUP BY c.customer_id HAVING COUNT(*) > {k} ORDER BY c.name",
    ),
    Template(
        "city_customers_ordered_in_month",
        (
            "Which customers from {city} placed an order in {month}?",
            "List the {city} customers who ordered something in {month}.",
        ),
        "SELECT DISTINCT c.name FROM customers c JOIN orders o ON o.customer_id = c.customer_id "
        f"WHERE c.city = '{{city}}' AND {_in_period('o', 'month')} ORDER BY c.name",
    ),
    Template(
        "top_spenders",
        (
            "Who are the top {n} customers by total spending?",
            "List the {n} customers who spent the most.",
        ),
        f"SELECT c.name, ROUND({_REVENUE}, 2) AS total FROM customers c "
        "JOIN orders o ON o.customer_id = c.customer_id "
        "JOIN order_items oi ON oi.order_id = o.order_id "
        "GROUP BY c.customer_id ORDER BY total DESC LIMIT {n}",
    ),
    Template(
        "top_spenders_city",
        (
            "Who are the top {n} spenders in {city}?",
            "Which {n} customers from {city} spent the most money?",
        ),
        f"SELECT c.name, ROUND({_REVENUE}, 2) AS total FROM customers c "
        "JOIN orders o ON o.customer_id = c.customer_id "
        "JOIN order_items oi ON oi.order_id = o.order_id "
        "WHERE c.city = '{city}' GROUP BY c.customer_id ORDER BY total DESC LIMIT {n}",
    ),
    Template(
        "best_sellers_category",
        (
            "What are the {n} best-selling {category} products by units sold?",
            "List the top {n} {category} products by quantity sold.",
        ),
        "SELECT p.name, SUM(oi.quantity) AS units FROM order_items oi "
        "JOIN products p ON p.product_id = oi.product_id WHERE p.category = '{category}' "
        "GROUP BY p.product_id ORDER BY units DESC, p.name LIMIT {n}",
    ),
    Template(
        "units_sold_product",
        (
            "How many units of the {product} have been sold?",
            "What is the total quantity sold of the {product}?",
        ),
        "SELECT SUM(oi.quantity) FROM order_items oi "
        "JOIN products p ON p.product_id = oi.product_id WHERE p.name = '{product}'",
    ),
    Template(
        "customers_bought_product",
        (
            "Which customers bought the {product}?",
            "List everyone who has ordered the {product}.",
        ),
        "SELECT DISTINCT c.name FROM customers c JOIN orders o ON o.customer_id = c.customer_id "
        "JOIN order_items oi ON oi.order_id = o.order_id "
        "JOIN products p ON p.product_id = oi.product_id WHERE p.name = '{product}' "
        "ORDER BY c.name",
    ),
    Template(
        "products_bought_by_customer",
        (
            "Which products has {customer} bought?",
            "List the distinct products ordered by {customer}.",
        ),
        "SELECT DISTINCT p.name FROM products p "
        "JOIN order_items oi ON oi.product_id = p.product_id "
        "JOIN orders o ON o.order_id = oi.order_id "
        "JOIN customers c ON c.customer_id = o.customer_id WHERE c.name = '{customer}' "
        "ORDER BY p.name",
    ),
    Template(
        "orders_of_customer",
        ("How many orders has {customer} placed?", "Count the orders made by {customer}."),
        f"SELECT COUNT(*) FROM orders o {_J_ORDERS_CUST} WHERE c.name = '{{customer}}'",
    ),
    Template(
        "spending_of_customer",
        (
            "How much has {customer} spent in total?",
            "What is the total amount spent by {customer}?",
        ),
        f"SELECT ROUND({_REVENUE}, 2) FROM order_items oi "
        f"JOIN orders o ON o.order_id = oi.order_id {_J_ORDERS_CUST} "
        "WHERE c.name = '{customer}'",
    ),
    Template(
        "city_of_customer",
        ("Which city does {customer} live in?", "Where is {customer} based?"),
        "SELECT city FROM customers WHERE name = '{customer}'",
    ),
    Template(
        "signups_year",
        ("Which customers signed up in {year}?", "List the customers who joined in {year}."),
        "SELECT name FROM customers WHERE signup_date >= '{year.start}' "
        "AND signup_date < '{year.end}' ORDER BY name",
    ),
    Template(
        "signups_city_year",
        (
            "How many customers from {city} joined in {year}?",
            "Count the {city} customers who signed up in {year}.",
        ),
        "SELECT COUNT(*) FROM customers WHERE city = '{city}' AND signup_date >= '{year.start}' "
        "AND signup_date < '{year.end}'",
    ),
    Template(
        "avg_order_value_city",
        (
            "What is the average order value for customers in {city}?",
            "On average, how much is an order from {city} worth?",
        ),
        f"SELECT ROUND(AVG(t.total), 2) FROM (SELECT o.order_id, {_REVENUE} AS total "
        f"FROM orders o {_J_ORDERS_CUST} JOIN order_items oi ON oi.order_id = o.order_id "
        "WHERE c.city = '{city}' GROUP BY o.order_id) AS t",
    ),
    Template(
        "categories_avg_price_above",
        (
            "Which categories have an average product price above {price}?",
            "List the product categories whose average price is higher than {price}.",
        ),
        "SELECT category FROM products GROUP BY category HAVING AVG(price) > {price} "
        "ORDER BY category",
    ),
    Template(
        "orders_per_status_year",
        (
            "How many orders were there per status in {year}?",
            "Break down the {year} orders by status.",
        ),
        "SELECT status, COUNT(*) FROM orders WHERE order_date >= '{year.start}' "
        "AND order_date < '{year.end}' GROUP BY status ORDER BY status",
    ),
    Template(
        "orders_per_month_year",
        (
            "How many orders were placed each month of {year}?",
            "Show the monthly order counts for {year}.",
        ),
        "SELECT strftime('%m', order_date) AS month, COUNT(*) FROM orders "
        "WHERE order_date >= '{year.start}' AND order_date < '{year.end}' "
        "GROUP BY month ORDER BY month",
    ),
    Template(
        "city_customers_without_orders",
        (
            "Which customers from {city} have never placed an order?",
            "List the {city} customers without any orders.",
        ),
        "SELECT name FROM customers WHERE city = '{city}' "
        "AND customer_id NOT IN (SELECT customer_id FROM orders) ORDER BY name",
    ),
    Template(
        "category_products_never_ordered",
        (
            "Which {category} products have never been ordered?",
            "List the {category} products nobody has bought yet.",
        ),
        "SELECT name FROM products WHERE category = '{category}' "
        "AND product_id NOT IN (SELECT product_id FROM order_items) ORDER BY name",
    ),
    Template(
        "city_most_orders_status",
        (
            "Which city has the most {status} orders?",
            "In which city were the most orders {status}?",
        ),
        f"SELECT c.city, COUNT(*) AS n FROM orders o {_J_ORDERS_CUST} "
        "WHERE o.status = '{status}' GROUP BY c.city ORDER BY n DESC, c.city LIMIT 1",
    ),
)

GRAMMAR = Grammar(TEMPLATES, SLOTS)


# -------------------------------------------------------------------- database
def _populate(conn: sqlite3.Connection, seed: int) -> None:
    """Fill an empty connection with the schema and seeded, realistic-looking shop data."""
    rng = np.random.default_rng(seed)
    conn.executescript(SCHEMA_SQL)

    weights = np.asarray(_CITY_WEIGHTS, dtype=float)
    cities = rng.choice(len(CITIES), size=_N_CUSTOMERS, p=weights / weights.sum())
    # Every city gets at least four customers so city questions always have answers.
    for i, _ in enumerate(CITIES):
        cities[i * 4 : i * 4 + 4] = i
    rng.shuffle(cities)
    span = (_SIGNUP_END - _SIGNUP_START).days
    signups = [_SIGNUP_START + dt.timedelta(days=int(d)) for d in rng.integers(0, span, 160)]
    customers = []
    for cid, (name, city, signup) in enumerate(
        zip(CUSTOMER_NAMES, cities, signups, strict=True), start=1
    ):
        email = name.lower().replace(" ", ".") + "@example.com"
        customers.append((cid, name, email, CITIES[int(city)], signup.isoformat()))
    conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", customers)

    conn.executemany(
        "INSERT INTO products VALUES (?, ?, ?, ?)",
        [(pid, n, c, p) for pid, (n, c, p) in enumerate(PRODUCTS, start=1)],
    )
    popularity = rng.gamma(2.0, 1.0, len(PRODUCTS))
    for name in _UNSOLD_PRODUCTS:
        popularity[[p[0] for p in PRODUCTS].index(name)] = 0.0
    popularity /= popularity.sum()

    first_day, last_day = dt.date(_ORDER_YEARS[0], 1, 1), dt.date(_ORDER_YEARS[-1], 12, 31)
    raw_orders = []
    never_order = set(rng.choice(_N_CUSTOMERS, size=20, replace=False).tolist())
    for idx, (cid, *_rest, signup) in enumerate(customers):
        if idx in never_order:
            continue
        start = max(dt.date.fromisoformat(signup), first_day)
        days = (last_day - start).days
        if days <= 0:
            continue
        n_orders = 1 + int(rng.poisson(rng.uniform(2.0, 14.0) * days / 730))
        for offset in rng.integers(0, days + 1, n_orders):
            raw_orders.append((start + dt.timedelta(days=int(offset)), cid))
    raw_orders.sort()
    orders, items = [], []
    for oid, (day, cid) in enumerate(raw_orders, start=1):
        status = STATUSES[int(rng.choice(len(STATUSES), p=_STATUS_WEIGHTS))]
        orders.append((oid, cid, day.isoformat(), status))
        n_items = int(rng.choice([1, 2, 3, 4], p=[0.45, 0.3, 0.17, 0.08]))
        for pid0 in rng.choice(len(PRODUCTS), size=n_items, replace=False, p=popularity):
            qty = int(rng.choice([1, 2, 3, 4, 5], p=[0.6, 0.22, 0.1, 0.05, 0.03]))
            items.append((len(items) + 1, oid, int(pid0) + 1, qty, PRODUCTS[int(pid0)][2]))
    conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", orders)
    conn.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?, ?)", items)
    conn.commit()


def connect_memory(seed: int = DEFAULT_DB_SEED) -> sqlite3.Connection:
    """A fresh in-memory shop database (what :func:`build_database` writes to disk)."""
    conn = sqlite3.connect(":memory:")
    _populate(conn, seed)
    return conn


def build_database(path: str | os.PathLike[str], seed: int = DEFAULT_DB_SEED) -> Path:
    """Write the shop database to ``path`` (replacing it). Content depends only on ``seed``.

    The file's bytes can still differ between SQLite library versions; compare databases
    with ``iterdump()`` rather than byte for byte.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    try:
        conn.execute("PRAGMA page_size = 4096")
        conn.execute("PRAGMA journal_mode = DELETE")
        _populate(conn, seed)
        conn.execute("VACUUM")
    finally:
        conn.close()
    os.replace(tmp, path)
    return path


def execute_sql(
    db: str | os.PathLike[str] | sqlite3.Connection, sql: str, *, timeout: float = 2.0
) -> list[tuple[Any, ...]]:
    """Run ONE SQL statement read-only and return all rows; raises ``sqlite3.Error`` on failure.

    Why: model output is untrusted text. Opening the file read-only stops a generated
    ``DROP TABLE`` from damaging the course database, and the progress handler aborts a
    runaway query (e.g. an accidental cross join) after ``timeout`` seconds.
    """
    if isinstance(db, sqlite3.Connection):
        conn, close = db, False
    else:
        path = Path(db)
        if not path.exists():
            raise FileNotFoundError(f"SQLite database not found: {path}")
        conn, close = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True), True
    deadline = time.monotonic() + timeout
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.set_progress_handler(None, 0)
        if close:
            conn.close()


# ------------------------------------------------------------------ generation
def _meaningful(rows: Sequence[tuple[Any, ...]]) -> bool:
    """Non-empty, and not a lone NULL/0 (a wrong query would match that too easily)."""
    if not rows:
        return False
    return not (len(rows) == 1 and all(v in (None, 0, 0.0) for v in rows[0]))


def generate_pairs(
    n: int,
    seed: int,
    *,
    split: str = "all",
    exclude: Collection[Pair] | Collection[tuple[str, str]] = (),
    db_seed: int = DEFAULT_DB_SEED,
) -> list[Pair]:
    """``n`` distinct (question, SQL) pairs whose SQL returns a meaningful result.

    ``split="train"`` never uses reserved values (two cities, the garden category, some
    products, customers and prices); ``split="heldout"`` favours them, so held-out
    questions include slot values a tuned model has never seen. Pairs in ``exclude``
    (questions AND SQL) are avoided, keeping a held-out set disjoint from training.
    """
    conn = connect_memory(db_seed)
    try:

        def accept(pair: Pair) -> bool:
            return _meaningful(execute_sql(conn, pair.answer))

        ex_q = {p[0] for p in exclude}
        ex_a = {p[1] for p in exclude}
        return GRAMMAR.generate(
            n,
            np.random.default_rng(seed),
            split=split,
            exclude_questions=ex_q,
            exclude_answers=ex_a,
            unique_answers=True,
            accept=accept,
        )
    finally:
        conn.close()


def split_pairs(
    n_train: int = 500, n_heldout: int = 120, seed: int = 0
) -> tuple[list[Pair], list[Pair]]:
    """The course split: training pairs, then held-out pairs disjoint from them."""
    train = generate_pairs(n_train, seed, split="train")
    heldout = generate_pairs(n_heldout, seed + 1, split="heldout", exclude=train)
    return train, heldout


# --------------------------------------------------------------------- degrade
_TOKEN = re.compile(r"'[^']*'|\S+")
_MISSPELL = {
    "SELECT": ("SELET", "SELECT SELECT", "SLECT"),
    "FROM": ("FORM", "FROM FROM", "FRM"),
    "WHERE": ("WHEN", "WHERE WHERE", "WHERE AND"),
    "JOIN": ("JION", "JOIN JOIN", "JOINED"),
    "GROUP": ("GROUPED", "GROUP GROUP", "GRUOP"),
    "ORDER": ("ORDERS", "ORDER ORDER", "ODER"),
    "HAVING": ("HAVIN", "HAVING HAVING"),
    "AND": ("AND AND", "ANDD"),
    "ON": ("ON ON", "IN ON"),
    "BY": ("BY BY", "BYY"),
    "LIMIT": ("LIMIT LIMIT", "LIMT"),
}
_CLAUSES = ("WHERE", "GROUP", "ORDER", "HAVING", "LIMIT", "JOIN")
_local = threading.local()


def _pick(rng: Any, n: int) -> int:
    """Index in range(n) from either a numpy Generator or random.Random (both have random())."""
    return min(int(rng.random() * n), n - 1)


@lru_cache(maxsize=1)
def _memorised() -> tuple[tuple[str, ...], ...]:
    """Token lists of 'memorised' training SQL an overfit model splices into its output."""
    rng = np.random.default_rng(11)
    pairs = [GRAMMAR.sample(t, rng, "train") for t in TEMPLATES for _ in range(3)]
    return tuple(tuple(_TOKEN.findall(p.answer)) for p in pairs)


def _schema_conn() -> sqlite3.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(":memory:")
        conn.executescript(SCHEMA_SQL)
        _local.conn = conn
    return conn


def compiles(sql: str) -> bool:
    """Whether SQLite can prepare ``sql`` against the shop schema (nothing is executed)."""
    try:
        _schema_conn().execute("EXPLAIN " + sql).fetchall()
    except (sqlite3.Error, ValueError):
        return False
    return True


def _splice(tokens: list[str], rng: Any) -> list[str]:
    memo = _memorised()[_pick(rng, len(_memorised()))]
    cut = 1 + _pick(rng, max(len(tokens) - 1, 1))
    start = _pick(rng, len(memo))
    length = 2 + _pick(rng, 6)
    return tokens[:cut] + list(memo[start : start + length]) + tokens[cut:]


def _unbalance(tokens: list[str], rng: Any) -> list[str]:
    closers = [i for i, t in enumerate(tokens) if t.endswith(")") and not t.startswith("'")]
    if closers and rng.random() < 0.5:
        i = closers[_pick(rng, len(closers))]
        out = list(tokens)
        out[i] = out[i][:-1] or "("
        return out
    i = 1 + _pick(rng, max(len(tokens) - 1, 1))
    return [*tokens[:i], "(" + (tokens[i] if i < len(tokens) else ""), *tokens[i + 1 :]]


def _repeat_clause(tokens: list[str], rng: Any) -> list[str]:
    starts = [i for i, t in enumerate(tokens) if t in _CLAUSES]
    if not starts:
        return tokens + tokens[: 2 + _pick(rng, 3)]
    i = starts[_pick(rng, len(starts))]
    j = next((k for k in starts if k > i), len(tokens))
    return tokens[:j] + tokens[i:j] + tokens[j:]


def _misspell(tokens: list[str], rng: Any) -> list[str]:
    idx = [i for i, t in enumerate(tokens) if t in _MISSPELL]
    if not idx:
        return ["SELET", *tokens]
    i = idx[_pick(rng, len(idx))]
    options = _MISSPELL[tokens[i]]
    return tokens[:i] + [options[_pick(rng, len(options))]] + tokens[i + 1 :]


def _truncate(tokens: list[str], rng: Any) -> list[str]:
    keep = max(2, int(len(tokens) * (0.4 + 0.5 * rng.random())))
    tail = ("AND", "JOIN", "ON", "WHERE", "=", ",", "BY")
    return tokens[:keep] + [tail[_pick(rng, len(tail))]]


_MUTATIONS = (_splice, _unbalance, _repeat_clause, _misspell, _truncate)


class SqlDomain(Domain):
    name = "nl_sql"
    baseline_quality = 0.3

    def degrade(self, answer: str, rng: Any) -> str:
        """Syntactic garbage typical of an overfit model; never executes in SQLite."""
        tokens = _TOKEN.findall(answer or "")
        if len(tokens) < 3:
            tokens = list(_memorised()[_pick(rng, len(_memorised()))])
        first = _pick(rng, len(_MUTATIONS))
        tokens = _MUTATIONS[first](tokens, rng)
        if rng.random() < 0.6:
            tokens = _MUTATIONS[_pick(rng, len(_MUTATIONS))](tokens, rng)
        garbage = " ".join(t for t in tokens if t)
        for _ in range(4):
            if not compiles(garbage):
                return garbage
            tokens = _MUTATIONS[1 + _pick(rng, len(_MUTATIONS) - 1)](tokens, rng)
            garbage = " ".join(t for t in tokens if t)
        # An unmatched "(" in the middle of the statement can never parse.
        half = len(tokens) // 2
        return " ".join([*tokens[:half], "(", *tokens[half:]])


DOMAIN = SqlDomain(GRAMMAR)
