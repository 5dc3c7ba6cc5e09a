def some_print():
    print("hi!")
