"""The secret detector on passwords a review found it missed, with the sentences, code and
markup about passwords that must stay quiet: a plain word given to a password in a sentence
or after a colon ("my password is sunshine", `pw: tiger`), a passphrase's words, XML elements
and attributes, MySQL's `-pS3cret`, and lower-case `db_pass=`, `pass=`, `pwd=`; short plain
words a second review found missed (`password: darling`, `password:tiger`, `password =
tiger`, `Passwort: tiger`, `mot de passe: tigre`).
Pure: `find` on strings, no proxy."""

from __future__ import annotations

import pytest

from router.core.privacy import find, redact_messages


def found(text: str) -> list[tuple[str, str]]:
    return [(f.kind, f.value) for f in find(text)]


# ---- a plain word given to a password --------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        # In a sentence that names the password as its subject, the word ending it.
        ("my password is sunshine", "sunshine"),
        ("My password is sunshine.", "sunshine"),  # the full stop is the sentence's
        ("the wifi password is sunshine", "sunshine"),
        ("Username is bob, password is tiger", "tiger"),
        ("Password is tiger", "tiger"),
        # After a colon, a word of fewer than 8 letters; `pw` is a password's name.
        ("password: tiger", "tiger"),
        ("pw: tiger", "tiger"),
        ("Password: tiger and the username is bob", "tiger"),
        ("my login (user: bob, password: sunshine)", "sunshine"),
        ("[db]\nuser = app\npassword = sunshine\n", "sunshine"),  # an INI file, spaced `=`
        ("my login (user: bob, password: hunter22)", "hunter22"),
        ('{"password": "tiger"}', "tiger"),
        # Lower-case `pass`, `pwd` and `_pass` names glued to `=`.
        ("db_pass=tiger", "tiger"),
        ("db_pass=value", "value"),
        ("pass=tiger", "tiger"),
        ("pwd=tiger", "tiger"),
        ("DB_HOST=db\ndb_user=app\ndb_pass=s3cr3t", "s3cr3t"),
        ("https://example.com/login?user=bob&pass=tiger", "tiger"),
    ],
)
def test_a_plain_word_given_to_a_password_is_a_secret(text, value):
    assert found(text) == [("secret", value)]


@pytest.mark.parametrize(
    "text",
    [
        "the password is wrong",
        "my password is too short",
        "password: required",
        "Forgot your password? Click here",
        "password is",
        "the password field",
        "What makes a password strong?",
        "passenger=3",
        "compass=north",
        "bypass=true",
        # Words that describe a password, by the list or by their ending.
        "The password is hashed with bcrypt.",
        "the password is stored",
        "The password is case-sensitive.",
        "The password is secret",
        "Your password is expired.",
        "password: missing",
        "password: none",
        "password: see below",
        # The name inside another clause: the word is not given to it.
        "no username or password is present",
        "if password is None:",
        "The password is sunshine and it never changed",  # a story goes on after the word
    ],
)
def test_a_sentence_about_a_password_carries_none(text):
    assert found(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "first_pass = False",
        "username, password = value",  # code passes a variable on
        "ph, pw = paddings",
        "def try_split(self, pw: Split, red: Split):",  # a parameter's type
        "DEBUG=pw:api,pw:channel",  # a namespace's members
        "if ok and azure_password:\n    return token",  # the next line's first word
        "password:\n  type: string\n  format: password",  # a schema: the next entry
        "DB_PASSWORD=\nDB_HOST=db",  # an empty value: the next line is no value
        '"password": "string"',  # a type's name in a sample request
        "cat /etc/passwd",
        "passwd: password updated successfully.",
    ],
)
def test_code_about_a_password_carries_none(text):
    assert found(text) == []


# ---- a passphrase: its words ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("passphrase is correct horse battery staple", "correct horse battery staple"),
        ("passphrase: correct horse battery staple", "correct horse battery staple"),
        ('The passphrase is "correct horse battery staple".', "correct horse battery staple"),
    ],
)
def test_a_passphrase_is_its_words(text, value):
    assert found(text) == [("secret", value)]


@pytest.mark.parametrize(
    "text",
    [
        "passphrase is too short",  # two words read as a phrase
        "the passphrase is stored in the keychain",  # words of prose
        "Passphrase: minimum twelve characters",
        "passphrase is stored encrypted locally",  # describing endings
        "Enter passphrase for key '/home/ann/.ssh/id_ed25519':",
    ],
)
def test_a_sentence_about_a_passphrase_carries_none(text):
    assert found(text) == []


# ---- XML and HTML ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("<password>s3cr3t</password>", "s3cr3t"),
        ("<Password>tiger</Password>", "tiger"),
        ("<db_password>tiger</db_password>", "tiger"),
        ("<datasource><DbPassword> hunter </DbPassword></datasource>", "hunter"),
        ('<password encrypted="false">s3cr3t</password>', "s3cr3t"),
        ('<user name="bob" password="tiger"/>', "tiger"),
        ("<connection user='app' password='tiger' />", "tiger"),
    ],
)
def test_a_password_in_xml_is_a_secret(text, value):
    assert found(text) == [("secret", value)]


@pytest.mark.parametrize(
    "text",
    [
        "<password/>",
        "<password />",
        "<password></password>",
        "<password>${DB_PASSWORD}</password>",
        "<password>string</password>",  # a web service's sample request
        "<passwordPolicy>strict</passwordPolicy>",
        "<compass>north</compass>",
        '<input type="password" name="password" placeholder="Password">',
        '<label for="password">Password</label>',
    ],
)
def test_xml_about_a_password_carries_none(text):
    assert found(text) == []


# ---- MySQL's -p -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("mysql -u root -pS3cret db", "S3cret"),
        ("mysql -uroot -ptiger shop", "tiger"),
        ("mysqldump -u root -p'S3cret!' shop > shop.sql", "S3cret!"),
        ("docker exec db mariadb -u app -pS3cret shop", "S3cret"),
        ("mysql --password=tiger shop", "tiger"),
    ],
)
def test_mysqls_password_flag_carries_a_secret(text, value):
    assert found(text) == [("secret", value)]


@pytest.mark.parametrize(
    "text",
    [
        "mysql -p",  # it prompts for the password
        "mysql -u root -p shop",  # `-p` and a space: the next word is the database
        "mysqldump -u root -p --all-databases > dump.sql",
        'mysql -u root -p"$MYSQL_PWD" shop',
        "mysql -u root -p<password> shop",
        "mysql -u root -p... shop",
        "mysql -P3306 -h db shop",  # the port
        "mkdir -pv build && ssh -p2222 host",
    ],
)
def test_mysql_without_a_password_carries_none(text):
    assert found(text) == []


# ---- found before, kept so; what redaction leaves --------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("the wifi password is hunter2", "hunter2"),
        ("mysql --password=S3cret", "S3cret"),
        ('<user name="bob" password="s3cr3t"/>', "s3cr3t"),
        ("password: sunshine and the username is bob", "sunshine"),
    ],
)
def test_passwords_found_before_are_still_found(text, value):
    assert found(text) == [("secret", value)]


def test_a_redacted_password_keeps_its_markup_and_flag():
    msgs = [
        {
            "role": "user",
            "content": "<password>s3cr3t</password>\nmysql -u root -pS3cret db\n"
            "passphrase: correct horse battery staple",
        }
    ]
    assert redact_messages(msgs)[0]["content"] == (
        "<password>[SECRET_1]</password>\nmysql -u root -p[SECRET_2] db\npassphrase: [SECRET_3]"
    )


# ---- a short plain word: a noun with a describing ending, glued, after ` = `, elsewhere -----


@pytest.mark.parametrize(
    "text, value",
    [
        # A noun that ends like a participle is no description ("password: missing" is).
        ("password: darling", "darling"),
        ("my password is darling", "darling"),
        ("password: darling and the user is bob", "darling"),
        # Glued to a colon, listed as a credential: the line's first item or after a pair.
        ("password:tiger", "tiger"),
        ("user:bob password:tiger", "tiger"),
        ("login: admin, password:tiger", "tiger"),
        ("- password:tiger", "tiger"),
        # After a spaced `=` in lower case, with no code around it.
        ("password = tiger", "tiger"),
        ("log in with password = tiger", "tiger"),
        ("[db]\nhost = db.example.com\nuser = app\npassword = tiger\n", "tiger"),
    ],
)
def test_a_short_plain_password_is_a_secret(text, value):
    assert found(text) == [("secret", value)]


@pytest.mark.parametrize(
    "text, value",
    [
        ("Passwort: tiger", "tiger"),
        ("mot de passe: tigre", "tigre"),
        ("Mot de passe : tigre", "tigre"),
        ("contraseña: tigre", "tigre"),
        ("Usuario: admin\nContraseña: tigre\n¿Por qué no puedo entrar?", "tigre"),
        ("senha: tigre", "tigre"),
        ("wachtwoord = tijger", "tijger"),
        ("Passwort: tiger und der Benutzer ist bob", "tiger"),
        ("Passwort: 12345", "12345"),  # as `password: 12345` is
        ("密码：tiger", "tiger"),  # a full-width colon is glued in those scripts
    ],
)
def test_a_short_plain_word_after_another_languages_name_is_a_secret(text, value):
    assert found(text) == [("secret", value)]


@pytest.mark.parametrize(
    "text",
    [
        # Literals, types and schemas.
        "password: none",
        "password = None",
        "password: null",
        "password: string",
        "password: str",
        "password: string;",
        "interface User {\n  name: string;\n  password: string;\n}",
        "password: {type: string}",
        "password: Optional[str] = None",
        # Words and phrases that describe a password.
        "Password: see below",
        "password: missing",
        "password: pending",
        "the password is expiring",
        # Glued to a colon as a namespace's member, not first on its line or after a pair.
        "php artisan password:update",
        "Events: password:update",
        # A variable, in code.
        "def login(tiger):\n    password = tiger\n    return password",
        "self.password = tiger",
        "let password = tiger;",
        "db_password = tiger",
        "onSaved: (value) {\n  password = value;\n}",
        "if ok:\n    password = entry",
    ],
)
def test_a_short_word_that_is_no_password_carries_none(text):
    assert found(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "Passwort: falsch",
        "Passwort: falsch und gesperrt",
        "Passwort: fehlt",
        "Passwort: gesetzt",  # a participle, by its ending
        "Passwort: gültig",
        "Passwort: hashed",  # an English word that describes one
        "Passwort: siehe unten",
        "Passwort: Pflichtfeld",
        "mot de passe : oublié",
        "mot de passe : requis",
        "Mot de passe : ci-dessous",
        "contraseña: incorrecta",
        "contraseña: olvidada",
        "contraseña: vacío",
        "contraseña: ninguna",
        "senha: errada",
        "wachtwoord: onjuist",
        "пароль: пустой",
        "hasło: błędne",
        "şifre: gerekli",
        "heslo: povinné",
        "def f(senha):\n    senha = valor",  # a variable, in code
    ],
)
def test_a_short_word_about_a_password_in_another_language_carries_none(text):
    assert found(text) == []
