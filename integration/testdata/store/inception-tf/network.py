from model import Tower
class UserModel(Tower):
    pass
